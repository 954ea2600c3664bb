//! A random bearer token that only the harness knows: the CGI host answers
//! only requests that carry it, so that no other local process can make it
//! start processes or containers.

use std::io::Read as _;

use subtle::ConstantTimeEq as _;

/// 128 random bits, as 32 hex digits.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// A fresh token from the kernel's random source.
    pub fn random() -> std::io::Result<Self> {
        let mut bytes = [0u8; 16];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        Ok(Self(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// The `Authorization` header value that carries it.
    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether `headers` carry it, compared in constant time.
    pub fn is_in(&self, headers: &http::HeaderMap) -> bool {
        let Some(given) = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
        else {
            return false;
        };
        bool::from(given.ct_eq(self.0.as_bytes()))
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::Token;

    #[test]
    fn only_the_exact_token_is_accepted() {
        let token = Token::random().unwrap();
        let other = Token::random().unwrap();
        assert_ne!(token.header_value(), other.header_value());
        assert_eq!(token.header_value().len(), "Bearer ".len() + 32);
        let with = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
            headers
        };
        assert!(token.is_in(&with(&token.header_value())));
        assert!(!token.is_in(&http::HeaderMap::new()));
        assert!(!token.is_in(&with(&other.header_value())));
        assert!(!token.is_in(&with(&token.header_value()[..38])));
        assert!(!token.is_in(&with(&format!("{}0", token.header_value()))));
        assert!(!token.is_in(&with(&token.header_value()["Bearer ".len()..])));
    }
}
