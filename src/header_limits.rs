//! A bound on each request header, as nginx and Apache keep one (8 KiB by
//! default in both): a larger header gets 431 with the usual JSON error
//! before any handler runs. (Beyond what the HTTP layer buffers at all,
//! about 128 KiB of headers, actix-web itself answers 431 with no body.)

use actix_web::ResponseError as _;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

use crate::error::ApiError;

/// The largest header line accepted: name and value, in bytes.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;

/// Middleware: refuses a request with a header over [`MAX_HEADER_BYTES`].
pub async fn limit_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let too_large = req
        .headers()
        .iter()
        .any(|(name, value)| name.as_str().len() + value.len() > MAX_HEADER_BYTES);
    if too_large {
        let response = ApiError::HeaderTooLarge(MAX_HEADER_BYTES).error_response();
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}
