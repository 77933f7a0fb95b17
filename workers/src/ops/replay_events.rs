//! `replay events`: re-publish outbox events, with their original ids, for a consumer that lost
//! data. Rows are read in `seq` order in chunks and published by the relay's own code path.

use chrono::{DateTime, Utc};
use rdkafka::producer::FutureProducer;
use sqlx::PgPool;

use seatline_shared::config::KafkaConfig;

use super::{Interrupt, Progress};
use crate::config::ReplayEventsArgs;
use crate::outbox::relay::{self, OutboxRow, OUTBOX_ROW_COLUMNS, PUBLISHED_SQL};

const CHUNK: i64 = 500;

/// What a replay did.
#[derive(Debug, PartialEq, Eq)]
pub struct EventsReplayed {
    pub selected: i64,
    pub published: i64,
    pub interrupted: bool,
}

struct Filter {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    aggregate: Option<String>,
    event_type: Option<String>,
}

/// Besides "published" ([`PUBLISHED_SQL`]): events still unpublished are the relay's to send.
const FILTER_SQL: &str = "($1::timestamptz IS NULL OR o.created_at >= $1)
    AND ($2::timestamptz IS NULL OR o.created_at < $2)
    AND ($3::text IS NULL OR o.aggregateid = $3)
    AND ($4::text IS NULL OR o.type = $4)";

pub async fn run(
    pool: &PgPool,
    producer: &FutureProducer,
    kafka: &KafkaConfig,
    args: &ReplayEventsArgs,
    interrupt: &Interrupt,
) -> anyhow::Result<EventsReplayed> {
    let filter = Filter {
        from: args.from,
        to: args.to,
        aggregate: args.aggregate.clone(),
        // Accept the CloudEvents type too.
        event_type: args.event_type.as_deref().map(|t| {
            t.strip_prefix(seatline_shared::events::TYPE_PREFIX)
                .unwrap_or(t)
                .to_owned()
        }),
    };
    let (selected,): (i64,) = sqlx::query_as(&format!(
        "SELECT count(*) FROM outbox o WHERE {PUBLISHED_SQL} AND {FILTER_SQL}"
    ))
    .bind(filter.from)
    .bind(filter.to)
    .bind(&filter.aggregate)
    .bind(&filter.event_type)
    .fetch_one(pool)
    .await?;
    if args.dry_run || selected == 0 {
        return Ok(EventsReplayed {
            selected,
            published: 0,
            interrupted: false,
        });
    }
    let mut progress = Progress::new("re-publishing events", selected as u64);
    let mut after_seq = 0i64;
    let mut published = 0i64;
    loop {
        if interrupt.is_set() {
            progress.finish();
            return Ok(EventsReplayed {
                selected,
                published,
                interrupted: true,
            });
        }
        let rows: Vec<OutboxRow> = sqlx::query_as(&format!(
            "SELECT {OUTBOX_ROW_COLUMNS}
             FROM outbox o WHERE {PUBLISHED_SQL} AND {FILTER_SQL} AND o.seq > $5
             ORDER BY o.seq LIMIT $6"
        ))
        .bind(filter.from)
        .bind(filter.to)
        .bind(&filter.aggregate)
        .bind(&filter.event_type)
        .bind(after_seq)
        .bind(CHUNK)
        .fetch_all(pool)
        .await?;
        let Some(last) = rows.last() else { break };
        after_seq = last.seq;
        relay::publish(producer, kafka, &rows).await?;
        published += rows.len() as i64;
        progress.advance(rows.len() as u64);
    }
    progress.finish();
    Ok(EventsReplayed {
        selected,
        published,
        interrupted: false,
    })
}
