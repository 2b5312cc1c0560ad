//! The harness's random strings: generated credentials and unique object names.

use rand::Rng;

/// `len` characters of [A-Za-z0-9]: a credential every Chroma era accepts (0.4.x tokens must
/// be alphanumeric, docs/chroma-eras.md#auth).
pub fn alnum(len: usize) -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// `len` characters of [a-z0-9]: a suffix valid in any Kubernetes object or DNS name.
pub fn dns_suffix(len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn alnum_has_the_length_and_alphabet() {
        let s = super::alnum(40);
        assert!(
            s.len() == 40 && s.chars().all(|c| c.is_ascii_alphanumeric()),
            "{s}"
        );
    }

    #[test]
    fn dns_suffix_is_lowercase_alphanumeric() {
        let s = super::dns_suffix(40);
        assert!(
            s.len() == 40
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "{s}"
        );
    }
}
