//! Checks of an `.npy` header before anything is allocated from it: the `npyz` parser trusts
//! the header's length, recurses into its nesting and multiplies its shape unchecked. Used by
//! the `.npz` weights loader here and by cnf-train's `.npy` table reader.
use std::io::Read;

/// Longest header accepted (numpy writes headers of a few hundred bytes and refuses to read
/// ones over 10 000 by default).
const MAX_HEADER_LEN: u64 = 1 << 20;

/// Reads the magic string, version, header length and header text of an `.npy` stream of
/// `total_len` bytes, checking what the `npyz` parser would otherwise trust: the header length
/// against the stream, the nesting depth (its parser recurses) and that the product of the
/// shape's non-zero dimensions fits in `u64` (so that no size derived from it overflows).
/// Returns the bytes read, to be chained in front of the rest of the stream.
///
/// # Errors
/// A one-line message when the stream is too short, lacks the magic string, has a version
/// other than 1-3, a header longer than the stream (or than 1 MiB), a header that is not
/// UTF-8, nested deeper than the parser allows, or a shape whose product overflows `u64`.
pub fn read_checked(r: &mut impl Read, total_len: u64) -> Result<Vec<u8>, String> {
    let mut prefix = vec![0u8; 8];
    r.read_exact(&mut prefix)
        .map_err(|_| "too short for an .npy file".to_string())?;
    if &prefix[..6] != b"\x93NUMPY" {
        return Err("not an .npy file (the magic string is missing)".into());
    }
    let len_bytes = match prefix[6] {
        1 => 2,
        2 | 3 => 4,
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let mut len_buf = [0u8; 4];
    r.read_exact(&mut len_buf[..len_bytes])
        .map_err(|_| "the header is cut short".to_string())?;
    prefix.extend_from_slice(&len_buf[..len_bytes]);
    let header_len = u64::from(u32::from_le_bytes(len_buf));
    let available = total_len.saturating_sub(prefix.len() as u64);
    if header_len > available || header_len > MAX_HEADER_LEN {
        return Err(format!(
            "the header claims {header_len} bytes, but {} are available (at most {MAX_HEADER_LEN})",
            available.min(MAX_HEADER_LEN)
        ));
    }
    let start = prefix.len();
    prefix.resize(start + header_len as usize, 0);
    r.read_exact(&mut prefix[start..])
        .map_err(|_| "the header is cut short".to_string())?;
    let text = std::str::from_utf8(&prefix[start..])
        .map_err(|_| "the header is not valid text".to_string())?;
    check_header_text(text)?;
    Ok(prefix)
}

/// Nesting depth and shape checks on the header's dictionary text.
fn check_header_text(text: &str) -> Result<(), String> {
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                if depth > 16 {
                    return Err("the header is nested too deeply".into());
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let shape_at = ["'shape'", "\"shape\""]
        .iter()
        .find_map(|key| text.find(key).map(|i| i + key.len()))
        .ok_or("the header has no shape")?;
    let rest = text[shape_at..].trim_start();
    let rest = rest
        .strip_prefix(':')
        .ok_or("the header's shape is unreadable")?
        .trim_start();
    let close = match rest.chars().next() {
        Some('(') => ')',
        Some('[') => ']',
        _ => return Err("the header's shape is not a tuple".into()),
    };
    let end = rest.find(close).ok_or("the header's shape is not closed")?;
    let mut elements: u64 = 1;
    for dim in rest[1..end]
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        let dim = dim.strip_suffix('L').unwrap_or(dim);
        let n: u64 = dim
            .parse()
            .map_err(|_| format!("the header's shape holds {dim:?}, not a size"))?;
        if n != 0 {
            elements = elements.checked_mul(n).ok_or_else(|| {
                format!(
                    "the header's shape {} has more elements than fit in 64 bits",
                    &rest[..=end]
                )
            })?;
        }
    }
    Ok(())
}
