//! Books: the fields a client may set, checked once, and the queries.
//! Every function here blocks; callers run them in `web::block`.

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use serde::{Deserialize, Serialize};

use crate::db::schema::books;
use crate::error::ApiError;

const MAX_TEXT_CHARS: usize = 200;
const YEARS: std::ops::RangeInclusive<i32> = -9999..=9999;

/// A stored book, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Queryable, Selectable, Insertable)]
#[diesel(table_name = books, check_for_backend(diesel::sqlite::Sqlite))]
pub struct Book {
    pub id: String,
    pub title: String,
    pub author: String,
    pub year: Option<i32>,
    /// latchkey's id of the user who created it.
    pub created_by: String,
}

/// The body of `POST /books` and `PUT /books/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookBody {
    pub title: String,
    pub author: String,
    #[serde(default)]
    pub year: Option<i32>,
}

/// A book's fields once checked: trimmed, non-empty, of sensible length.
#[derive(Debug, Clone, PartialEq, Eq, AsChangeset)]
#[diesel(table_name = books, treat_none_as_null = true)]
pub struct BookFields {
    title: String,
    author: String,
    year: Option<i32>,
}

impl BookFields {
    pub fn parse(body: BookBody) -> Result<Self, ApiError> {
        let text = |name: &str, value: String| {
            let value = value.trim().to_owned();
            if value.is_empty() || value.chars().count() > MAX_TEXT_CHARS {
                return Err(ApiError::Validation(format!(
                    "\"{name}\" must be 1 to {MAX_TEXT_CHARS} characters long"
                )));
            }
            Ok(value)
        };
        if body.year.is_some_and(|year| !YEARS.contains(&year)) {
            return Err(ApiError::Validation(format!(
                "\"year\" must be between {} and {}",
                YEARS.start(),
                YEARS.end()
            )));
        }
        Ok(Self {
            title: text("title", body.title)?,
            author: text("author", body.author)?,
            year: body.year,
        })
    }

    /// A new book with these fields, created by `user_id`. Its id is a
    /// UUIDv7, so ids sort by creation time.
    pub fn into_book(self, user_id: String) -> Book {
        Book {
            id: uuid::Uuid::now_v7().to_string(),
            title: self.title,
            author: self.author,
            year: self.year,
            created_by: user_id,
        }
    }
}

/// Every book, oldest first.
pub fn list_all(conn: &mut SqliteConnection) -> QueryResult<Vec<Book>> {
    books::table
        .order(books::id.asc())
        .select(Book::as_select())
        .load(conn)
}

pub fn find(conn: &mut SqliteConnection, id: &str) -> QueryResult<Option<Book>> {
    books::table
        .find(id)
        .select(Book::as_select())
        .first(conn)
        .optional()
}

pub fn insert(conn: &mut SqliteConnection, book: &Book) -> QueryResult<()> {
    diesel::insert_into(books::table)
        .values(book)
        .execute(conn)
        .map(drop)
}

/// Replaces a book's fields (its creator stays); `None` if there is no
/// such book.
pub fn replace_fields(
    conn: &mut SqliteConnection,
    id: &str,
    fields: &BookFields,
) -> QueryResult<Option<Book>> {
    conn.transaction(|conn| {
        let updated = diesel::update(books::table.find(id))
            .set(fields)
            .execute(conn)?;
        if updated == 0 {
            return Ok(None);
        }
        find(conn, id)
    })
}

/// Whether there was such a book.
pub fn delete(conn: &mut SqliteConnection, id: &str) -> QueryResult<bool> {
    diesel::delete(books::table.find(id))
        .execute(conn)
        .map(|deleted| deleted > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(title: &str, author: &str, year: Option<i32>) -> BookBody {
        BookBody {
            title: title.into(),
            author: author.into(),
            year,
        }
    }

    #[test]
    fn fields_are_trimmed() {
        let fields = BookFields::parse(body("  Dune ", "Frank Herbert\n", Some(1965))).unwrap();

        assert_eq!(
            fields,
            BookFields {
                title: "Dune".into(),
                author: "Frank Herbert".into(),
                year: Some(1965),
            }
        );
    }

    #[test]
    fn an_empty_or_overlong_title_or_author_is_refused() {
        let long = "x".repeat(MAX_TEXT_CHARS + 1);
        for (case, body) in [
            ("empty title", body("", "A", None)),
            ("blank title", body("   ", "A", None)),
            ("empty author", body("T", "", None)),
            ("long title", body(&long, "A", None)),
            ("long author", body("T", &long, None)),
        ] {
            assert!(
                matches!(BookFields::parse(body), Err(ApiError::Validation(_))),
                "{case}"
            );
        }
        let longest = "é".repeat(MAX_TEXT_CHARS);
        assert!(BookFields::parse(body(&longest, "A", None)).is_ok());
    }

    #[test]
    fn a_year_outside_four_digits_is_refused() {
        for year in [10_000, -10_000, i32::MAX] {
            assert!(matches!(
                BookFields::parse(body("T", "A", Some(year))),
                Err(ApiError::Validation(m)) if m.contains("year")
            ));
        }
        assert!(BookFields::parse(body("The Odyssey", "Homer", Some(-700))).is_ok());
    }
}
