// A complete useChat app on edge-memory (README: "Vercel AI SDK: useChat"); the
// end-to-end tests render this very file against the worker (tests/e2e/aisdk.test.mjs).
import { useChat } from "@ai-sdk/react";
import { DefaultChatTransport } from "ai";
import { useState } from "react";

/** The chat's stored messages, to restore it after a reload ([] for a new chat). */
export async function loadMessages(api, id, headers = {}) {
  const res = await fetch(`${api}/${encodeURIComponent(id)}/messages`, { headers });
  return res.status === 404 ? [] : res.json();
}

/** `api`: the worker's `/api/chat`; `id`: the chat, which is a LangGraph thread. */
export function Chat({ api, id, headers, initialMessages = [] }) {
  const [transport] = useState(() => new DefaultChatTransport({
    api,
    headers,
    // Send only the new message: the worker remembers the rest.
    prepareSendMessagesRequest: ({ id, messages, trigger, messageId }) => ({
      body: { id, message: messages.at(-1), trigger, messageId },
    }),
  }));
  const { messages, sendMessage, regenerate, status, error } = useChat({
    id,
    messages: initialMessages,
    transport,
    resume: true, // a reply still streaming when the page (re)loads picks up where it is
  });
  const [input, setInput] = useState("");
  const send = (event) => {
    event.preventDefault();
    sendMessage({ text: input });
    setInput("");
  };
  return (
    <form onSubmit={send}>
      <ul>
        {messages.map((m) => (
          <li key={m.id}>
            {m.role}: {m.parts.map((p) => (p.type === "text" ? p.text : "")).join("")}
          </li>
        ))}
      </ul>
      {error && <p role="alert">{error.message}</p>}
      <input value={input} onChange={(e) => setInput(e.target.value)} disabled={status !== "ready"} />
      <button type="button" onClick={() => regenerate()} disabled={status !== "ready"}>Regenerate</button>
    </form>
  );
}
