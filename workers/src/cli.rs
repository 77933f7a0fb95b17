//! Runs a parsed command line: the workers, or one of the operator commands, printing their
//! results on stdout (logs go to stderr).

use anyhow::Context;
use rdkafka::producer::Producer;

use crate::config::{Cli, Command, DlqCommand, ReplayCommand, WorkersConfig};
use crate::ops::{self, Interrupt};
use crate::seed::Seeded;

pub async fn execute(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config;
    match cli.command {
        Command::Run => crate::run(config, seatline_shared::shutdown::signal()).await,
        Command::Migrate => {
            let pool = seatline_shared::db::pool(&config.database)?;
            crate::migrate(&pool).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Seed => {
            let pool = seatline_shared::db::pool(&config.database)?;
            crate::migrate(&pool).await?;
            match crate::seed::seed(&pool).await? {
                Seeded::Skipped => println!("catalog already has concerts; seed skipped"),
                Seeded::Created { concerts, dates } => {
                    println!("seeded {concerts} concerts with {dates} dates of 50 seats")
                }
            }
            Ok(())
        }
        Command::Replay(ReplayCommand::Events(args)) => {
            let (pool, producer) = connections(&config)?;
            let done = ops::replay_events::run(
                &pool,
                &producer,
                &config.kafka,
                &args,
                &Interrupt::on_signal(),
            )
            .await?;
            producer.flush(std::time::Duration::from_secs(10))?;
            if args.dry_run {
                println!("would re-publish {} events", done.selected);
            } else {
                println!(
                    "re-published {} of {} selected events with their original ids{}",
                    done.published,
                    done.selected,
                    if done.interrupted {
                        " (interrupted)"
                    } else {
                        ""
                    }
                );
            }
            Ok(())
        }
        Command::Replay(ReplayCommand::Requests(args)) => {
            let (pool, producer) = connections(&config)?;
            let replay = ops::replay_requests::Replay {
                pool: &pool,
                producer: &producer,
                kafka: &config.kafka,
                reservation: &config.reservation,
                batch_size: config.batch_size,
            };
            let done = replay.run(&args, &Interrupt::on_signal()).await?;
            println!("group {}", done.group);
            for r in &done.ranges {
                println!(
                    "  {} [{}] offsets {}..{} ({} messages)",
                    r.topic,
                    r.partition,
                    r.start,
                    r.end,
                    r.end - r.start
                );
            }
            match &done.changes {
                None if args.dry_run => println!("dry run: nothing reprocessed"),
                None => println!("offsets reset; the workers reprocess from there when they start"),
                Some(changes) => {
                    println!(
                        "reprocessed {} messages{}",
                        done.reprocessed,
                        if done.interrupted {
                            " (interrupted)"
                        } else {
                            ""
                        }
                    );
                    println!("changed: {changes}");
                }
            }
            Ok(())
        }
        Command::Dlq(DlqCommand::List { limit }) => {
            let letters = ops::dlq::read_all(&config.kafka)?;
            println!("{} dead-lettered messages", letters.len());
            println!("PARTITION:OFFSET\tTIME\tORIGIN TOPIC/PARTITION@OFFSET\tKEY\tERROR");
            for letter in letters.iter().skip(letters.len().saturating_sub(limit)) {
                println!("{}", letter.line());
            }
            Ok(())
        }
        Command::Dlq(DlqCommand::Redrive {
            messages,
            all,
            value_file,
        }) => {
            let letters = ops::dlq::read_all(&config.kafka)?;
            let chosen: Vec<_> = if all {
                letters
            } else {
                let mut chosen = Vec::new();
                for (p, o) in &messages {
                    let letter = letters
                        .iter()
                        .find(|l| l.partition == *p && l.offset == *o)
                        .with_context(|| format!("no dead letter at {p}:{o}"))?;
                    chosen.push(letter.clone());
                }
                chosen
            };
            let value = match &value_file {
                Some(path) => {
                    anyhow::ensure!(chosen.len() == 1, "--value-file fixes exactly one message");
                    Some(
                        std::fs::read(path)
                            .with_context(|| format!("reading {}", path.display()))?,
                    )
                }
                None => None,
            };
            let producer = seatline_shared::kafka::producer(&config.kafka)?;
            let sent = ops::dlq::redrive(
                &producer,
                &chosen,
                value.as_deref(),
                &Interrupt::on_signal(),
            )
            .await?;
            println!(
                "redrove {sent} of {} messages to their original topics",
                chosen.len()
            );
            Ok(())
        }
    }
}

fn connections(
    config: &WorkersConfig,
) -> anyhow::Result<(sqlx::PgPool, rdkafka::producer::FutureProducer)> {
    Ok((
        seatline_shared::db::pool(&config.database)?,
        seatline_shared::kafka::producer(&config.kafka)?,
    ))
}
