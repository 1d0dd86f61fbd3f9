//! Any string as a presented token: never a panic, and only strings of the
//! exact token shape are accepted.
#![no_main]

use latchkey::domain::TokenDigest;
use latchkey::domain::token::{TOKEN_LENGTH, TOKEN_PREFIX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|token: &str| {
    if TokenDigest::of_presented(token).is_ok() {
        assert!(token.starts_with(TOKEN_PREFIX));
        assert_eq!(token.len(), TOKEN_LENGTH);
    }
});
