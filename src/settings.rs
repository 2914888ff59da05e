//! Deployment settings kept in the database (secrets generated on first start).

use entity::setting;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, DbErr, EntityTrait};

/// Inserts `key` with `value` unless present. Returns whether this call inserted it, so
/// that of several processes starting at once exactly one wins.
pub async fn insert_if_absent<C: ConnectionTrait>(
    db: &C,
    key: &str,
    value: &str,
) -> Result<bool, DbErr> {
    let row = setting::ActiveModel {
        key: Set(key.to_owned()),
        value: Set(value.to_owned()),
    };
    let inserted = setting::Entity::insert(row)
        .on_conflict(
            OnConflict::column(setting::Column::Key)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(inserted > 0)
}

/// The stored value of `key`, storing `init()` first when absent.
pub async fn get_or_init<C: ConnectionTrait>(
    db: &C,
    key: &str,
    init: impl FnOnce() -> String,
) -> Result<String, DbErr> {
    if let Some(row) = setting::Entity::find_by_id(key.to_owned()).one(db).await? {
        return Ok(row.value);
    }
    insert_if_absent(db, key, &init()).await?;
    setting::Entity::find_by_id(key.to_owned())
        .one(db)
        .await?
        .map(|row| row.value)
        .ok_or_else(|| DbErr::RecordNotFound(format!("setting {key}")))
}
