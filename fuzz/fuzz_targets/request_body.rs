//! Any bytes as a JSON request body, decoded as each endpoint decodes it,
//! then validated as the handlers validate it: never a panic.
#![no_main]

use latchkey::domain::{Email, PasswordPolicy};
use latchkey::routes::auth::{ChangePasswordBody, LoginBody, RegisterBody};
use latchkey::routes::introspect::IntrospectBody;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let policy = PasswordPolicy { min_chars: 12 };
    if let Ok(body) = serde_json::from_slice::<RegisterBody>(data) {
        let (email, password) = body.credentials();
        let _ = Email::parse(email);
        let _ = policy.check(password.to_owned());
    }
    if let Ok(body) = serde_json::from_slice::<LoginBody>(data) {
        let (email, _) = body.credentials();
        let _ = Email::parse(email);
    }
    let _ = serde_json::from_slice::<ChangePasswordBody>(data);
    let _ = serde_json::from_slice::<IntrospectBody>(data);
});
