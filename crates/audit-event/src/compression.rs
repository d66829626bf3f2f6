//! How event text is kept compressed at rest, by the relay's spool and by the lake: an LZ4 block
//! with the text's length (u32, little-endian) prepended — `lz4_flex`'s "size prepended" layout.

use std::cell::RefCell;

thread_local! {
    /// One LZ4 hash table per thread, cleared for each call, instead of a fresh zeroed allocation
    /// for every event.
    static TABLE: RefCell<lz4_flex::block::CompressTable> = RefCell::default();
}

/// Compresses `text`.
pub fn compress(text: &str) -> Vec<u8> {
    let input = text.as_bytes();
    let mut out = vec![0u8; 4 + lz4_flex::block::get_maximum_output_size(input.len())];
    out[..4].copy_from_slice(&(input.len() as u32).to_le_bytes());
    match TABLE.with_borrow_mut(|table| lz4_flex::block::compress_into_with_table(input, &mut out[4..], table)) {
        Ok(written) => {
            out.truncate(4 + written);
            out
        }
        // Cannot happen (the output has the maximum size); the allocating form is the fallback.
        Err(_) => lz4_flex::block::compress_prepend_size(input),
    }
}

/// The text of `bytes` made by [`compress`]; the error says why it is not.
pub fn decompress(bytes: &[u8]) -> Result<String, String> {
    let raw = lz4_flex::block::decompress_size_prepended(bytes).map_err(|e| format!("does not decompress: {e}"))?;
    String::from_utf8(raw).map_err(|_| "is not UTF-8".to_owned())
}

/// Like [`decompress`], into `out` (cleared first), so that a loop over many events reuses one
/// buffer instead of allocating per event.
pub fn decompress_into(bytes: &[u8], out: &mut String) -> Result<(), String> {
    let (size, body) = match bytes {
        [a, b, c, d, body @ ..] => (u32::from_le_bytes([*a, *b, *c, *d]) as usize, body),
        _ => return Err("does not decompress: too short".into()),
    };
    let mut raw = std::mem::take(out).into_bytes();
    raw.clear();
    raw.resize(size, 0);
    let result = lz4_flex::block::decompress_into(body, &mut raw);
    match result {
        Ok(n) if n == size => {}
        Ok(_) => return Err("does not decompress: the size does not match".into()),
        Err(e) => return Err(format!("does not decompress: {e}")),
    }
    *out = String::from_utf8(raw).map_err(|_| "is not UTF-8".to_owned())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_the_size_prepended_layout() {
        for text in ["", "{}", &"{\"a\":\"xyz\"}".repeat(100), &"ab".repeat(40_000), "naïve ✓ text", "{}"] {
            let packed = compress(text);
            assert_eq!(decompress(&packed).unwrap(), text);
            assert_eq!(packed, lz4_flex::block::compress_prepend_size(text.as_bytes()), "the layout stored so far");
        }
        assert!(decompress(b"\x05\x00\x00\x00").unwrap_err().contains("does not decompress"));
        let mut buffer = String::from("left over");
        for text in ["{}", &"{\"a\":\"xyz\"}".repeat(100), ""] {
            decompress_into(&compress(text), &mut buffer).unwrap();
            assert_eq!(buffer, text);
        }
        assert!(decompress_into(b"\x05\x00\x00\x00", &mut buffer).unwrap_err().contains("does not decompress"));
        assert!(decompress_into(b"\x05", &mut buffer).is_err());
    }
}
