//! `/books`: every route needs a live latchkey token (`LatchkeyUser`);
//! deleting needs an admin (`LatchkeyAdmin`).

use actix_web::http::header;
use actix_web::{FromRequest as _, HttpRequest, HttpResponse, web};
use anyhow::Context as _;
use latchkey_client::{LatchkeyAdmin, LatchkeyUser};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::books::{self, BookBody, BookFields};
use crate::db::Pool;
use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/books")
            .route(web::get().to(list))
            .route(web::post().to(create))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/books/{id}")
            .route(web::get().to(show))
            .route(web::put().to(update))
            .route(web::delete().to(delete))
            .default_service(web::to(method_not_allowed)),
    );
}

const NO_SUCH_BOOK: ApiError = ApiError::NotFound("there is no such book");

async fn list(_: LatchkeyUser, pool: web::Data<Pool>) -> Result<HttpResponse, ApiError> {
    let books = on_database(&pool, books::list_all).await?;
    Ok(HttpResponse::Ok().json(json!({ "books": books })))
}

async fn show(
    _: LatchkeyUser,
    pool: web::Data<Pool>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let book = on_database(&pool, move |conn| books::find(conn, &id))
        .await?
        .ok_or(NO_SUCH_BOOK)?;
    Ok(HttpResponse::Ok().json(book))
}

async fn create(
    LatchkeyUser(user): LatchkeyUser,
    pool: web::Data<Pool>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let body: BookBody = json_body(&req, payload).await?;
    let book = BookFields::parse(body)?.into_book(user.user_id);
    let stored = book.clone();
    on_database(&pool, move |conn| books::insert(conn, &stored)).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/books/{}", book.id)))
        .json(book))
}

async fn update(
    _: LatchkeyUser,
    pool: web::Data<Pool>,
    id: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let body: BookBody = json_body(&req, payload).await?;
    let fields = BookFields::parse(body)?;
    let id = id.into_inner();
    let book = on_database(&pool, move |conn| books::replace_fields(conn, &id, &fields))
        .await?
        .ok_or(NO_SUCH_BOOK)?;
    Ok(HttpResponse::Ok().json(book))
}

async fn delete(
    _: LatchkeyAdmin,
    pool: web::Data<Pool>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if on_database(&pool, move |conn| books::delete(conn, &id)).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(NO_SUCH_BOOK)
    }
}

pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("there is no such route"))
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

/// The JSON body, read only after the token was checked. actix polls a
/// handler's extractors together, so a `web::Json` argument would read and
/// judge (400, 415, 422) the body of a caller about to get a 401.
async fn json_body<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, actix_web::Error> {
    let mut payload = payload.into_inner();
    Ok(web::Json::<T>::from_request(req, &mut payload)
        .await?
        .into_inner())
}

/// Runs a query on a pooled connection, off the async executor.
async fn on_database<T, F>(pool: &Pool, query: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut diesel::SqliteConnection) -> diesel::QueryResult<T> + Send + 'static,
{
    let pool = pool.clone();
    web::block(move || -> anyhow::Result<T> {
        let mut conn = pool.get().context("failed to get a database connection")?;
        query(&mut conn).context("the query failed")
    })
    .await?
    .map_err(ApiError::Internal)
}
