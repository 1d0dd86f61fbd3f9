use std::fmt;

/// RFC 5321 caps a forward path at 254 octets.
const MAX_EMAIL_LENGTH: usize = 254;

/// A syntactically valid email address, trimmed and lower-cased, so that
/// `Alice@Example.com ` and `alice@example.com` are the same account.
#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidEmail(&'static str);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let normalised = raw.trim().to_lowercase();
        if normalised.is_empty() {
            return Err(InvalidEmail("the email address is empty"));
        }
        if normalised.len() > MAX_EMAIL_LENGTH {
            return Err(InvalidEmail("the email address is longer than 254 bytes"));
        }
        // Quoted local parts and IP-literal domains are valid RFC 5322 but
        // are refused: no real mailbox needs them and they invite confusion.
        if normalised.contains(['"', '[', ']', ' ']) {
            return Err(InvalidEmail(
                "the email address contains characters that are not allowed",
            ));
        }
        let valid = email_address::EmailAddress::is_valid(&normalised);
        let has_dotted_domain = normalised
            .rsplit_once('@')
            .is_some_and(|(_, domain)| domain.contains('.') && !domain.ends_with('.'));
        if !valid || !has_dotted_domain {
            return Err(InvalidEmail("this is not a valid email address"));
        }
        Ok(Self(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        let email = Email::parse("  Alice@Example.COM \n").unwrap();
        assert_eq!(email.as_str(), "alice@example.com");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "   ",
            "alice",
            "alice@",
            "@example.com",
            "alice@localhost",
            "alice@example.",
            "a b@example.com",
            "\"a\"@example.com",
            "alice@[127.0.0.1]",
            "alice@@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn overlong_emails_are_refused() {
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }
}
