// Reads what LangGraph's Python serializer writes (type "msgpack", and "null",
// "bytearray"), so a thread a Python app wrote is resumed here. LangGraph.js's own
// serializer does not read msgpack; its "json" is read by both languages.
import {
  AIMessage, AIMessageChunk, ChatMessage, ChatMessageChunk, FunctionMessage, FunctionMessageChunk,
  HumanMessage, HumanMessageChunk, RemoveMessage, SystemMessage, SystemMessageChunk, ToolMessage,
  ToolMessageChunk,
} from '@langchain/core/messages';
import { DeltaSnapshot } from '@langchain/langgraph-checkpoint';

// LangGraph's msgpack extension types (langgraph.checkpoint.serde.jsonplus).
const EXT_CONSTRUCTOR_SINGLE_ARG = 0;
const EXT_CONSTRUCTOR_POS_ARGS = 1;
const EXT_CONSTRUCTOR_KW_ARGS = 2;
const EXT_METHOD_SINGLE_ARG = 3;
const EXT_PYDANTIC_V1 = 4;
const EXT_PYDANTIC_V2 = 5;
const EXT_DELTA_SNAPSHOT = 7;

// Python's LangChain message classes and their LangChain.js twins.
const MESSAGE_CLASSES = {
  HumanMessage, HumanMessageChunk, AIMessage, AIMessageChunk, SystemMessage, SystemMessageChunk,
  ToolMessage, ToolMessageChunk, ChatMessage, ChatMessageChunk, FunctionMessage, FunctionMessageChunk,
  RemoveMessage,
};

const decoder = new TextDecoder();

/** A Python object packed as an extension, as the nearest JavaScript value. */
function fromExtension(type, payload) {
  const value = decode(payload);
  if (type === EXT_DELTA_SNAPSHOT) return new DeltaSnapshot(value);
  const [module, name, arg] = value;
  if ((type === EXT_PYDANTIC_V2 || type === EXT_PYDANTIC_V1) && module.startsWith('langchain_core.messages')) {
    const Message = MESSAGE_CLASSES[name];
    if (Message) {
      const { type: _type, ...fields } = arg;
      return new Message(fields);
    }
  }
  if (type === EXT_METHOD_SINGLE_ARG && module === 'datetime') return arg; // ISO text, as LangGraph.js keeps dates
  if (type === EXT_CONSTRUCTOR_SINGLE_ARG) {
    if (name === 'set' || name === 'frozenset') return new Set(arg);
    if (name === 'deque') return [...arg];
    return arg; // UUID hex, Decimal text, addresses: their text
  }
  if (type === EXT_CONSTRUCTOR_POS_ARGS || type === EXT_CONSTRUCTOR_KW_ARGS || type === EXT_PYDANTIC_V2
      || type === EXT_PYDANTIC_V1) {
    return arg; // dataclasses, namedtuples, other models: their fields
  }
  throw new TypeError(`edge-memory: cannot read the Python value ${module}.${name} (msgpack extension ${type}) in JavaScript`);
}

/** Decodes one msgpack document. */
export function decode(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const take = (n) => {
    const slice = bytes.subarray(at, at + n);
    at += n;
    return slice;
  };
  const str = (n) => decoder.decode(take(n));
  const array = (n) => Array.from({ length: n }, () => next());
  const map = (n) => {
    const out = {};
    for (let i = 0; i < n; i += 1) {
      const key = next();
      out[String(key)] = next();
    }
    return out;
  };
  const ext = (n) => {
    const type = view.getInt8(at);
    at += 1;
    return fromExtension(type, take(n));
  };
  const u8 = () => view.getUint8(at++);
  const u16 = () => { const v = view.getUint16(at); at += 2; return v; };
  const u32 = () => { const v = view.getUint32(at); at += 4; return v; };
  function next() {
    const byte = u8();
    if (byte <= 0x7f) return byte;
    if (byte >= 0xe0) return byte - 0x100;
    if ((byte & 0xf0) === 0x80) return map(byte & 0x0f);
    if ((byte & 0xf0) === 0x90) return array(byte & 0x0f);
    if ((byte & 0xe0) === 0xa0) return str(byte & 0x1f);
    let value;
    switch (byte) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return take(u8()).slice();
      case 0xc5: return take(u16()).slice();
      case 0xc6: return take(u32()).slice();
      case 0xc7: return ext(u8());
      case 0xc8: return ext(u16());
      case 0xc9: return ext(u32());
      case 0xca: value = view.getFloat32(at); at += 4; return value;
      case 0xcb: value = view.getFloat64(at); at += 8; return value;
      case 0xcc: return u8();
      case 0xcd: return u16();
      case 0xce: return u32();
      case 0xcf: value = view.getBigUint64(at); at += 8; return safeInteger(value);
      case 0xd0: value = view.getInt8(at); at += 1; return value;
      case 0xd1: value = view.getInt16(at); at += 2; return value;
      case 0xd2: value = view.getInt32(at); at += 4; return value;
      case 0xd3: value = view.getBigInt64(at); at += 8; return safeInteger(value);
      case 0xd4: return ext(1);
      case 0xd5: return ext(2);
      case 0xd6: return ext(4);
      case 0xd7: return ext(8);
      case 0xd8: return ext(16);
      case 0xd9: return str(u8());
      case 0xda: return str(u16());
      case 0xdb: return str(u32());
      case 0xdc: return array(u16());
      case 0xdd: return array(u32());
      case 0xde: return map(u16());
      case 0xdf: return map(u32());
      default: throw new TypeError(`edge-memory: not msgpack (byte 0x${byte.toString(16)} at ${at - 1})`);
    }
  }
  const value = next();
  if (at !== bytes.length) throw new TypeError(`edge-memory: ${bytes.length - at} bytes after the msgpack value`);
  return value;
}

function safeInteger(big) {
  return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
}
