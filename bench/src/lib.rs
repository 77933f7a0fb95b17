//! Seatline's benchmark: a load generator written against the public HTTP API and the event
//! topics, plus a synchronous baseline straight against PostgreSQL, with invariants checked
//! after every run.
//!
//! # Layout
//! - [`config`]: the command line.
//! - [`client`]: the HTTP API as a client sees it. [`events`]: outcomes seen on the event topics.
//! - [`setup`]: bench data through the admin API; users with admitted tokens and points.
//! - [`scenarios`]: `rush`, `pay`, `queue`, `baseline-sync`.
//! - [`invariants`], [`resources`], [`calibration`], [`stats`], [`report`].

pub mod calibration;
pub mod client;
pub mod config;
pub mod events;
pub mod invariants;
pub mod report;
pub mod resources;
pub mod scenarios;
pub mod setup;
pub mod stats;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use seatline_shared::events::OutcomeKind;
use secrecy::ExposeSecret;
use uuid::Uuid;

use config::BenchArgs;
use scenarios::SeatPicker;

/// Runs the chosen scenarios and reports. Returns whether every invariant held.
pub async fn run(args: BenchArgs) -> anyhow::Result<bool> {
    let speed_at_start = read_machine_speed().await?;
    let api = client::Api::new(&args.api, &args.admin_token, args.max_http_connections)?;
    let pool = seatline_shared::db::pool(&args.database)?;
    let collector = events::Collector::start(&args.kafka, args.outcomes_at_most()).await?;
    let concurrency = args.concurrency.max(1);
    let processes = resources::Processes {
        api: args.api_pid,
        workers: args.workers_pid,
        postgres: args.postgres_pid,
        broker: args.broker_pid,
    };

    tracing::info!(
        dates = args.dates,
        "creating bench dates through the admin API"
    );
    let dates = setup::create_dates(&api, &args.label, args.dates, concurrency).await?;
    setup::settle_catalog(&pool).await?;
    let closed_loop = Duration::from_secs(args.closed_loop_secs);
    // Users with admitted tokens and points, for the scenarios that need them.
    let (users, issued) = if ["queue", "rush", "pay", "baseline-sync"]
        .iter()
        .any(|s| args.wants(s))
    {
        tracing::info!(users = args.users, "issuing tokens");
        let (users, issued) = setup::users(&api, args.users, concurrency, &processes).await?;
        setup::wait_active(&api, &users, concurrency, Duration::from_secs(300)).await?;
        setup::charge(&api, &users, 10_000, concurrency).await?;
        (users, Some(issued))
    } else {
        (Vec::new(), None)
    };

    let queue = match issued {
        Some(issued) if args.wants("queue") => Some(
            scenarios::queue::polls(&api, &users, concurrency, closed_loop, issued, "ACTIVE").await,
        ),
        _ => None,
    };
    // Run where nobody is admitted (deploy/local/bench.sh stops the workers first), so every
    // token stays WAITING; a poll that finds another status counts as an error.
    let queue_waiting = if args.wants("queue-waiting") {
        tracing::info!(users = args.users, "issuing tokens to waiters");
        let (waiters, issued) = setup::users(&api, args.users, concurrency, &processes).await?;
        let result =
            scenarios::queue::polls(&api, &waiters, concurrency, closed_loop, issued, "WAITING")
                .await;
        anyhow::ensure!(
            result.poll.count > 0,
            "no poll found its token WAITING: is an admitter running?"
        );
        Some(result)
    } else {
        None
    };

    let seats = Arc::new(SeatPicker::new(dates.clone(), args.zipf));
    let accepted: scenarios::rush::Accepted = Default::default();
    let rush = if args.wants("rush") {
        scenarios::rush::Rush {
            api: &api,
            collector: &collector,
            users: &users,
            seats: &seats,
            step: args.step(),
            p99_limit: Duration::from_millis(args.p99_limit_ms),
            processes: &processes,
        }
        .run(&args.rates, &accepted)
        .await
    } else {
        Vec::new()
    };
    let sustainable = rush
        .iter()
        .filter(|s| s.sustainable)
        .max_by_key(|s| s.offered_per_sec);

    let mut accepted_ids: Vec<Uuid> = accepted
        .lock()
        .expect("lock")
        .iter()
        .map(|(id, _)| *id)
        .collect();
    let pay = if args.wants("pay") {
        // One payment per user for the hold the rush gave them.
        let mut paid_users = HashSet::new();
        let holds: Vec<(usize, Uuid)> = accepted
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|(id, user)| {
                let outcome = collector.get(id)?.outcome;
                let reservation = outcome.reservation_id?;
                (outcome.kind == OutcomeKind::Held && paid_users.insert(*user))
                    .then_some((*user, reservation))
            })
            .collect();
        let (result, payment_ids) =
            scenarios::pay::run(&api, &collector, &users, &holds, concurrency).await;
        accepted_ids.extend(payment_ids);
        Some(result)
    } else {
        None
    };

    let baseline = if args.wants("baseline-sync") {
        let baseline_dates = setup::create_dates(
            &api,
            &format!("{} baseline", args.label),
            args.dates,
            concurrency,
        )
        .await?;
        let picker = Arc::new(SeatPicker::new(baseline_dates, args.zipf));
        let user_ids: Vec<Uuid> = users.iter().map(|u| u.id).collect();
        Some(
            scenarios::baseline::run(
                args.database.url.expose_secret(),
                &user_ids,
                picker,
                concurrency,
                closed_loop,
                1,
                &processes,
            )
            .await?,
        )
    } else {
        None
    };

    let speed_at_end = read_machine_speed().await?;
    accepted_ids.sort();
    let invariants = invariants::check(&pool, &accepted_ids).await?;
    let (seats_in_database,): (i64,) = sqlx::query_as("SELECT count(*) FROM seats")
        .fetch_one(&pool)
        .await?;
    let report = report::Report {
        label: args.label.clone(),
        machine: report::Machine::read(),
        machine_speed: calibration::MachineSpeed {
            at_start: speed_at_start,
            at_end: speed_at_end,
        },
        seats_in_database,
        rush_seats: dates.len() * 50,
        users: users.len(),
        queue,
        queue_waiting,
        sustainable_rate: sustainable.map(|s| s.offered_per_sec),
        sustainable_decisions_per_sec: sustainable.map(|s| s.decisions_per_sec),
        ratio_to_baseline: match (sustainable, &baseline) {
            (Some(s), Some(b)) if b.decisions_per_sec > 0.0 => {
                Some(s.decisions_per_sec / b.decisions_per_sec)
            }
            _ => None,
        },
        rush,
        pay,
        baseline,
        api: args.api_pid.and_then(resources::read),
        workers: args.workers_pid.and_then(resources::read),
        invariants,
    };
    report.print();
    let (json, svg) = report.write(&args.out)?;
    println!("wrote {} and {}", json.display(), svg.display());
    Ok(report.invariants.ok)
}

/// One [`calibration`] reading, off the runtime's threads: it blocks for two fifths of a second.
async fn read_machine_speed() -> anyhow::Result<calibration::Calibration> {
    Ok(tokio::task::spawn_blocking(calibration::measure).await?)
}
