//! Time and randomness, injected.
//!
//! `SystemTime::now()` panics on `wasm32-unknown-unknown`, and deterministic ids make tests
//! reproducible, so the core never reads a clock or a random source directly: it takes a
//! [`Clock`] and an [`Entropy`]. [`SystemClock`] and [`SystemEntropy`] pick the right
//! source for the target (the OS natively, JavaScript's `Date` and `crypto` on wasm32).

use std::cell::Cell;

/// A source of wall-clock time.
pub trait Clock {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// A source of cryptographically strong random bytes.
pub trait Entropy {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);
}

/// The platform's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

/// The platform's cryptographic random source.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemEntropy;

#[cfg(not(target_arch = "wasm32"))]
impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
    }
}

#[cfg(target_arch = "wasm32")]
impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        js_sys::Date::now() as i64
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Entropy for SystemEntropy {
    fn fill(&self, buf: &mut [u8]) {
        // The OS source only fails on exotic platforms; the worker refuses requests when
        // it does (`secure_random_available`), so this clock-seeded fallback only keeps
        // the trait infallible and never panics.
        if getrandom::fill(buf).is_err() {
            fallback_fill(buf, SystemClock.now_ms());
        }
    }
}

#[cfg(target_arch = "wasm32")]
impl Entropy for SystemEntropy {
    fn fill(&self, buf: &mut [u8]) {
        if js_fill(buf).is_err() {
            fallback_fill(buf, SystemClock.now_ms());
        }
    }
}

/// Whether the platform's secure random source answers. The worker checks it before
/// serving each request and refuses to serve without it (fail closed), so ids are never
/// made by [`SystemEntropy`]'s last-resort clock-seeded fallback.
pub fn secure_random_available() -> bool {
    thread_local! {
        // A source that answered once in this isolate keeps answering: probe until then.
        static ANSWERED: Cell<bool> = const { Cell::new(false) };
    }
    if ANSWERED.with(Cell::get) {
        return true;
    }
    let mut probe = [0u8; 16];
    #[cfg(not(target_arch = "wasm32"))]
    let ok = getrandom::fill(&mut probe).is_ok();
    #[cfg(target_arch = "wasm32")]
    let ok = js_fill(&mut probe).is_ok();
    ANSWERED.with(|answered| answered.set(ok));
    ok
}

/// `globalThis.crypto.getRandomValues`, present in Workers, browsers and Node ≥ 19.
#[cfg(target_arch = "wasm32")]
fn js_fill(buf: &mut [u8]) -> Result<(), wasm_bindgen::JsValue> {
    use wasm_bindgen::JsCast;
    let crypto = js_sys::Reflect::get(&js_sys::global(), &"crypto".into())?;
    let get_random_values: js_sys::Function =
        js_sys::Reflect::get(&crypto, &"getRandomValues".into())?.dyn_into()?;
    // getRandomValues accepts at most 65536 bytes per call.
    for chunk in buf.chunks_mut(65536) {
        let array = js_sys::Uint8Array::new_with_length(chunk.len() as u32);
        get_random_values.call1(&crypto, &array)?;
        array.copy_to(chunk);
    }
    Ok(())
}

fn fallback_fill(buf: &mut [u8], seed: i64) {
    let mut state = seed as u64 ^ 0x9E37_79B9_7F4A_7C15;
    for byte in buf {
        // splitmix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        *byte = (z ^ (z >> 31)) as u8;
    }
}

/// A clock that returns a fixed time and can be moved by hand, for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: Cell<i64>,
}

impl ManualClock {
    /// A clock stopped at `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        ManualClock {
            now: Cell::new(now_ms),
        }
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.now.set(self.now.get() + ms);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now.get()
    }
}

/// Deterministic bytes from a seed, for reproducible tests. Not for production ids.
#[derive(Debug)]
pub struct SeededEntropy {
    state: Cell<u64>,
}

impl SeededEntropy {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        SeededEntropy {
            state: Cell::new(seed),
        }
    }
}

impl Entropy for SeededEntropy {
    fn fill(&self, buf: &mut [u8]) {
        let seed = self.state.get();
        fallback_fill(buf, seed as i64);
        self.state.set(seed.wrapping_add(buf.len() as u64 + 1));
    }
}

/// A random (version 4) UUID: 122 random bits, the form of server-made thread ids.
pub fn uuid_v4(entropy: &dyn Entropy) -> String {
    let mut bytes = [0u8; 16];
    entropy.fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    format_uuid(&bytes)
}

/// A time-ordered (version 7) UUID for `ms`: its text sorts by time.
pub fn uuid_v7(ms: i64, entropy: &dyn Entropy) -> String {
    let mut bytes = [0u8; 16];
    entropy.fill(&mut bytes);
    let ms = ms.max(0) as u64;
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = (bytes[6] & 0x0f) | 0x70;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    format_uuid(&bytes)
}

fn format_uuid(bytes: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// ISO-8601 UTC text for a Unix time in milliseconds, in the form LangGraph's server
/// uses: `2026-11-24T00:08:49.030000+00:00`.
pub fn iso8601(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let secs_of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}000+00:00",
        secs_of_day / 3600,
        (secs_of_day / 60) % 60,
        secs_of_day % 60,
        millis
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_known_instants() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000000+00:00");
        // 2026-11-24T00:08:49.030Z
        assert_eq!(
            iso8601(1_795_478_929_030),
            "2026-11-24T00:08:49.030000+00:00"
        );
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000000+00:00");
    }

    #[test]
    fn uuids_have_version_and_variant() {
        let e = SeededEntropy::new(7);
        let v4 = uuid_v4(&e);
        assert_eq!(v4.len(), 36);
        assert_eq!(&v4[14..15], "4");
        assert!(matches!(&v4[19..20], "8" | "9" | "a" | "b"));
        let a = uuid_v7(1_000, &e);
        let b = uuid_v7(2_000, &e);
        assert_eq!(&a[14..15], "7");
        assert!(a < b, "v7 ids sort by time: {a} < {b}");
    }

    #[test]
    fn system_entropy_differs_between_calls() {
        let e = SystemEntropy;
        assert_ne!(uuid_v4(&e), uuid_v4(&e));
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod entropy_tests {
    #[test]
    fn the_secure_source_answers_here() {
        assert!(super::secure_random_available());
    }
}
