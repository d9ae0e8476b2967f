//! Reading OpenAI-compatible streamed chat completions (`text/event-stream`).
//!
//! [`SseParser`] turns network reads into events, whatever the reads' boundaries: a frame
//! or a multi-byte UTF-8 character split across reads is held until it is whole.
//! [`parse_chunk`] turns one `data:` payload of a chat completion chunk into what the
//! engine needs: text deltas, the finish reason, usage, or the provider's error.

use serde_json::Value;

use crate::error::{Error, Result};

/// Largest single event read from a model stream: far above any real chunk, it bounds
/// what a broken upstream can make an isolate buffer (isolates have 128 MB).
pub const SSE_EVENT_MAX_BYTES: usize = 1024 * 1024;

/// One server-sent event's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseFrame {
    /// The joined `data:` lines of an event.
    Data(String),
    /// `data: [DONE]`: the stream's end.
    Done,
}

/// Incremental `text/event-stream` parser. Comments (`: keep-alive`) and events without
/// data are skipped; `\n` and `\r\n` line ends are both accepted.
#[derive(Debug, Default)]
pub struct SseParser {
    pending: Vec<u8>,
}

impl SseParser {
    /// A parser with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one network read; returns the events it completed.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseFrame>> {
        self.pending.extend_from_slice(bytes);
        let mut frames = Vec::new();
        // An event ends at a blank line. The separator is ASCII, so cutting there never
        // splits a UTF-8 character.
        while let Some((end, sep)) = find_blank_line(&self.pending) {
            let event: Vec<u8> = self.pending.drain(..end + sep).take(end).collect();
            let text = String::from_utf8(event).map_err(|e| Error::Upstream {
                reason: format!("the model stream is not UTF-8 ({e})"),
            })?;
            if let Some(frame) = parse_event(&text) {
                frames.push(frame);
            }
        }
        // What is left is one unfinished event.
        if self.pending.len() > SSE_EVENT_MAX_BYTES + 4 {
            return Err(Error::Upstream {
                reason: format!(
                    "the model stream sent an event over {SSE_EVENT_MAX_BYTES} bytes (or no event breaks)"
                ),
            });
        }
        Ok(frames)
    }

    /// Ends the input: a last event without its blank line still counts.
    pub fn finish(&mut self) -> Result<Vec<SseFrame>> {
        if self.pending.iter().all(u8::is_ascii_whitespace) {
            self.pending.clear();
            return Ok(Vec::new());
        }
        self.pending.extend_from_slice(b"\n\n");
        self.push(&[])
    }
}

/// The first blank line: `(index of the event's end, separator length)`.
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' && buf[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if buf[i..].starts_with(b"\r\n\r\n") {
            return Some((i, 4));
        }
        i += 1;
    }
    None
}

fn parse_event(text: &str) -> Option<SseFrame> {
    let data: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with(':'))
        .filter_map(|line| line.strip_prefix("data:"))
        .map(|rest| rest.strip_prefix(' ').unwrap_or(rest))
        .collect();
    if data.is_empty() {
        return None;
    }
    let joined = data.join("\n");
    if joined.trim() == "[DONE]" {
        Some(SseFrame::Done)
    } else {
        Some(SseFrame::Data(joined))
    }
}

/// What one chat completion chunk says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChunkEvent {
    /// Text to append to the reply (may be empty).
    pub delta: String,
    /// Why the model stopped, on the last content chunk.
    pub finish_reason: Option<String>,
    /// Token usage `(prompt, completion)`, on the usage chunk (`stream_options.include_usage`).
    pub usage: Option<(u64, u64)>,
}

/// Reads one `data:` payload of an OpenAI-compatible chat completion stream. A payload
/// with an `error` object is the provider's error, returned as [`Error::Upstream`].
pub fn parse_chunk(data: &str) -> Result<ChunkEvent> {
    let value: Value = serde_json::from_str(data).map_err(|e| Error::Upstream {
        reason: format!("the model sent a malformed stream chunk ({e})"),
    })?;
    if let Some(error) = value.get("error") {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| error.to_string(), str::to_string);
        return Err(Error::Upstream {
            reason: format!("the model reported an error: {message}"),
        });
    }
    let mut event = ChunkEvent::default();
    if let Some(choice) = value
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
    {
        if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str) {
            event.delta.push_str(text);
        }
        event.finish_reason = choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    if let Some(usage) = value.get("usage").filter(|u| !u.is_null()) {
        let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
        event.usage = Some((count("prompt_tokens"), count("completion_tokens")));
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(reads: &[&[u8]]) -> Vec<SseFrame> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for read in reads {
            out.extend(parser.push(read).unwrap());
        }
        out.extend(parser.finish().unwrap());
        out
    }

    #[test]
    fn frames_split_across_reads_are_joined() {
        let stream = b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n";
        let whole = all(&[stream]);
        for cut in 1..stream.len() {
            assert_eq!(
                all(&[&stream[..cut], &stream[cut..]]),
                whole,
                "cut at {cut}"
            );
        }
        assert_eq!(
            whole,
            vec![
                SseFrame::Data("{\"a\":1}".into()),
                SseFrame::Data("{\"b\":2}".into()),
                SseFrame::Done
            ]
        );
    }

    #[test]
    fn multibyte_utf8_split_across_reads_survives() {
        let stream = "data: {\"t\":\"héllo ✓ 日本\"}\n\n".as_bytes();
        for cut in 1..stream.len() {
            let frames = all(&[&stream[..cut], &stream[cut..]]);
            assert_eq!(
                frames,
                vec![SseFrame::Data("{\"t\":\"héllo ✓ 日本\"}".into())],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn keep_alives_comments_and_crlf_are_handled() {
        let frames =
            all(&[b": keep-alive\n\n: ping\r\n\r\ndata: x\r\n\r\nevent: other\n\ndata: [DONE]"]);
        assert_eq!(frames, vec![SseFrame::Data("x".into()), SseFrame::Done]);
    }

    #[test]
    fn chunks_give_deltas_finish_and_usage() {
        let c = parse_chunk(r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}"#).unwrap();
        assert_eq!(c.delta, "Hel");
        assert_eq!(c.finish_reason, None);
        let end =
            parse_chunk(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#).unwrap();
        assert_eq!(end.finish_reason.as_deref(), Some("stop"));
        let usage = parse_chunk(r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#).unwrap();
        assert_eq!(usage.usage, Some((12, 3)));
    }

    #[test]
    fn error_objects_and_malformed_chunks_are_upstream_errors() {
        let err = parse_chunk(r#"{"error":{"message":"Rate limit reached","type":"requests"}}"#)
            .unwrap_err();
        assert!(
            matches!(&err, Error::Upstream { reason } if reason.contains("Rate limit")),
            "{err:?}"
        );
        assert!(matches!(
            parse_chunk("{not json"),
            Err(Error::Upstream { .. })
        ));
    }
}
