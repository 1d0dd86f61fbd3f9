//! What a request tells about its client: the address and user agent that
//! sessions and security events keep, and the label a client names its
//! session with.

use actix_web::HttpRequest;
use actix_web::http::header;

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::events::Origin;
use crate::store::sessions::ClientInfo;

const MAX_LABEL_CHARS: usize = 100;

/// The client's address (through the trusted proxy header when one is
/// configured, as the throttle sees it) and its user agent, truncated.
pub fn origin(state: &AppState, req: &HttpRequest) -> Origin {
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    Origin::new(state.throttle.client_ip(req), user_agent)
}

/// The origin and the optional label the client chose for its session.
pub fn client_info(
    state: &AppState,
    req: &HttpRequest,
    label: Option<String>,
) -> Result<ClientInfo, ApiError> {
    let label = label.map(|l| l.trim().to_owned()).filter(|l| !l.is_empty());
    if label
        .as_ref()
        .is_some_and(|l| l.chars().count() > MAX_LABEL_CHARS)
    {
        return Err(ApiError::Validation {
            code: "invalid_label",
            message: format!("the label must be at most {MAX_LABEL_CHARS} characters long"),
        });
    }
    Ok(ClientInfo {
        origin: origin(state, req),
        label,
    })
}
