//! Any bytes as an `Authorization` header: the Bearer parser and the token
//! decoder behind it must never panic, and must agree with each other.
#![no_main]

use actix_web::http::header::HeaderValue;
use latchkey::auth::bearer_token;
use latchkey::domain::TokenDigest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = HeaderValue::from_bytes(data) else {
        return;
    };
    if let Some(token) = bearer_token(&header) {
        assert!(!token.is_empty() && !token.contains(' '));
        let _ = TokenDigest::of_presented(token);
    }
});
