// The README's useChat app (examples/ai-sdk/Chat.jsx) as a page: `?api=<worker>/api/chat&id=<chat>`.
import { createRoot } from "react-dom/client";
import { Chat, loadMessages } from "../../../examples/ai-sdk/Chat.jsx";

const params = new URLSearchParams(location.search);
const api = params.get("api");
const id = params.get("id");
loadMessages(api, id).then((messages) => {
  window.loaded = messages.length;
  createRoot(document.getElementById("root")).render(<Chat api={api} id={id} initialMessages={messages} />);
});
