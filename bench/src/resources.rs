//! What the measured processes cost, read from /proc: peak resident memory and CPU time of a
//! process, and how a window's CPU time split among the stack's processes.
//!
//! The split is what says which process bounds a figure on a machine that runs the whole stack
//! (a figure is bound by CPU when the machine is busy and no one process is waiting on another).

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Instant;

use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Usage {
    pub peak_rss_mib: f64,
    pub cpu_seconds: f64,
}

/// `None` when the process is not there (or /proc is not).
pub fn read(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let ticks = ProcStat::read(pid)?.own_ticks();
    Some(Usage {
        peak_rss_mib: hwm_kib / 1024.0,
        cpu_seconds: ticks as f64 / clock_ticks(),
    })
}

/// The fields of `/proc/<pid>/stat` the accounting needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcStat {
    ppid: u32,
    utime: u64,
    stime: u64,
    /// CPU time of children that exited and were waited for.
    cutime: u64,
    cstime: u64,
}

impl ProcStat {
    fn read(pid: u32) -> Option<Self> {
        Self::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    fn parse(stat: &str) -> Option<Self> {
        // Fields after the command name (which may contain spaces and parentheses) start at
        // the last ") "; there, field 4 of the man page (ppid) is index 1.
        let rest = stat.get(stat.rfind(')')? + 2..)?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| fields.get(i)?.parse::<u64>().ok();
        Some(Self {
            ppid: u32::try_from(field(1)?).ok()?,
            utime: field(11)?,
            stime: field(12)?,
            cutime: field(13)?,
            cstime: field(14)?,
        })
    }

    fn own_ticks(&self) -> u64 {
        self.utime + self.stime
    }

    fn with_reaped_children(&self) -> u64 {
        self.own_ticks() + self.cutime + self.cstime
    }
}

/// The stack's processes whose CPU time a window splits. Each is optional: one that is not
/// given (or not on this machine) is left out of the split, not counted as zero.
#[derive(Debug, Clone, Default)]
pub struct Processes {
    pub api: Option<u32>,
    pub workers: Option<u32>,
    /// PostgreSQL's postmaster. Its backends and helpers are its children: the ones alive are
    /// read one by one, and the ones that exited are in the postmaster's reaped-children time.
    pub postgres: Option<u32>,
    pub broker: Option<u32>,
}

/// CPU ticks of every process group, and of the whole machine, at one moment.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    at: Instant,
    ticks: BTreeMap<&'static str, u64>,
    /// Of the broker's ticks, its JIT compiler threads'.
    broker_jit: Option<u64>,
    machine: MachineTicks,
}

/// How one window's CPU time split among the processes.
#[derive(Debug, Clone, Serialize)]
pub struct CpuSplit {
    /// Wall-clock length of the window.
    pub seconds: f64,
    /// Share of all the machine's CPU time that was busy (with anything) in the window.
    pub machine_busy_pct: f64,
    /// CPU-seconds each process (group) used in the window.
    pub cpu_seconds: BTreeMap<&'static str, f64>,
    /// Of the broker's CPU-seconds, those of the JVM's JIT compiler threads: a broker still
    /// compiling its hot code spends on it in bursts that can take most of a core, which is a
    /// start-up cost a long-running broker no longer pays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_jit_seconds: Option<f64>,
}

impl CpuSplit {
    /// CPU microseconds per unit of work (a decision, a token issue), by process.
    pub fn micros_per(&self, units: u64) -> BTreeMap<&'static str, f64> {
        let units = units.max(1) as f64;
        self.cpu_seconds
            .iter()
            .map(|(name, seconds)| (*name, seconds * 1e6 / units))
            .collect()
    }

    /// One line: µs per unit by process, then how busy the machine was.
    pub fn describe(&self, units: u64, unit: &str) -> String {
        let per: Vec<String> = self
            .micros_per(units)
            .iter()
            .map(|(name, micros)| format!("{name} {micros:.0}"))
            .collect();
        let jit = match self.broker_jit_seconds {
            Some(seconds) if seconds > 0.0 => {
                format!("; broker JIT compiling {:.1} CPU-s", seconds)
            }
            _ => String::new(),
        };
        format!(
            "CPU µs per {unit}: {}; machine {:.0}% busy{jit}",
            per.join(", "),
            self.machine_busy_pct
        )
    }
}

impl Processes {
    /// `None` where /proc is not readable.
    pub fn snapshot(&self) -> Option<CpuSnapshot> {
        let machine = MachineTicks::parse(&std::fs::read_to_string("/proc/stat").ok()?)?;
        let mut ticks = BTreeMap::new();
        let mut own = |name: &'static str, pid: Option<u32>| {
            if let Some(stat) = pid.and_then(ProcStat::read) {
                ticks.insert(name, stat.own_ticks());
            }
        };
        own("api", self.api);
        own("workers", self.workers);
        own("broker", self.broker);
        own("load generator", Some(std::process::id()));
        if let Some(postmaster) = self.postgres {
            if let Some(total) = process_tree_ticks(postmaster) {
                ticks.insert("postgres", total);
            }
        }
        Some(CpuSnapshot {
            at: Instant::now(),
            ticks,
            broker_jit: self.broker.and_then(jit_compiler_ticks),
            machine,
        })
    }

    /// The split from `before` (a [`snapshot`](Self::snapshot) taken when the window opened)
    /// until now.
    pub fn split_since(&self, before: Option<CpuSnapshot>) -> Option<CpuSplit> {
        Some(before?.until(&self.snapshot()?))
    }
}

impl CpuSnapshot {
    /// The split from this snapshot until `later`. A process missing from either side (it
    /// exited, or was never there) is left out.
    pub fn until(&self, later: &CpuSnapshot) -> CpuSplit {
        let hz = clock_ticks();
        let cpu_seconds = later
            .ticks
            .iter()
            .filter_map(|(name, &end)| {
                let start = *self.ticks.get(name)?;
                Some((*name, end.saturating_sub(start) as f64 / hz))
            })
            .collect();
        let broker_jit_seconds = match (self.broker_jit, later.broker_jit) {
            (Some(start), Some(end)) => Some(end.saturating_sub(start) as f64 / hz),
            _ => None,
        };
        CpuSplit {
            seconds: later.at.duration_since(self.at).as_secs_f64(),
            machine_busy_pct: self.machine.busy_pct_until(&later.machine),
            cpu_seconds,
            broker_jit_seconds,
        }
    }
}

/// The parent's own and reaped-children time plus every live child's, so that a child that
/// exits between two readings moves from one term to the other instead of vanishing.
fn process_tree_ticks(parent: u32) -> Option<u64> {
    let root = ProcStat::read(parent)?;
    let children: u64 = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(ProcStat::read)
        .filter(|stat| stat.ppid == parent)
        .map(|stat| stat.with_reaped_children())
        .sum();
    Some(root.with_reaped_children() + children)
}

/// CPU ticks of a JVM's JIT compiler threads: HotSpot names them `C1 CompilerThread<n>` and
/// `C2 CompilerThread<n>`, which the kernel's 15-byte thread names cut to `C1 CompilerThre`.
/// `None` when the process or its threads cannot be read. A compiler thread that the JVM ends
/// within a window takes its ticks with it, so a window's figure is a lower bound.
fn jit_compiler_ticks(pid: u32) -> Option<u64> {
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let ticks = threads
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = std::fs::read_to_string(path.join("comm")).ok()?;
            if !is_jit_compiler_thread(name.trim_end()) {
                return None;
            }
            Some(ProcStat::parse(&std::fs::read_to_string(path.join("stat")).ok()?)?.own_ticks())
        })
        .sum();
    Some(ticks)
}

fn is_jit_compiler_thread(name: &str) -> bool {
    ["C1 Compiler", "C2 Compiler"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// The machine's CPU time from the first line of `/proc/stat`, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MachineTicks {
    busy: u64,
    total: u64,
}

impl MachineTicks {
    fn parse(stat: &str) -> Option<Self> {
        let line = stat.lines().next()?;
        let mut fields = line.split_whitespace();
        if fields.next()? != "cpu" {
            return None;
        }
        // user nice system idle iowait irq softirq steal (guest time is already in user).
        let values: Vec<u64> = fields
            .take(8)
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        if values.len() < 5 {
            return None;
        }
        let total: u64 = values.iter().sum();
        let idle = values[3] + values[4];
        Some(Self {
            busy: total - idle,
            total,
        })
    }

    fn busy_pct_until(&self, later: &MachineTicks) -> f64 {
        let total = later.total.saturating_sub(self.total);
        if total == 0 {
            return 0.0;
        }
        later.busy.saturating_sub(self.busy) as f64 * 100.0 / total as f64
    }
}

fn clock_ticks() -> f64 {
    static HZ: OnceLock<f64> = OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (tokio (rt) 1) S 17 4242 4242 0 -1 4194560 900 0 0 0 \
                    123 45 6 7 20 0 3 0 100 1000 200 18446744073709551615";
        assert_eq!(
            ProcStat::parse(stat),
            Some(ProcStat {
                ppid: 17,
                utime: 123,
                stime: 45,
                cutime: 6,
                cstime: 7
            })
        );
        assert_eq!(ProcStat::parse("4242 (truncated) S 17 4242"), None);
        assert_eq!(ProcStat::parse("no command name"), None);
    }

    #[test]
    fn machine_busy_share_leaves_out_idle_and_iowait() {
        let before = MachineTicks::parse("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3").unwrap();
        let after = MachineTicks::parse("cpu  250 0 100 850 100 0 0 0 0 0\n").unwrap();
        // 200 busy ticks (150 user, 50 system) of 300.
        assert!((before.busy_pct_until(&after) - 200.0 * 100.0 / 300.0).abs() < 1e-9);
        assert_eq!(before.busy_pct_until(&before), 0.0);
        assert_eq!(MachineTicks::parse("intr 1 2 3"), None);
    }

    #[test]
    fn a_split_leaves_out_a_process_missing_from_either_side() {
        let machine = MachineTicks { busy: 0, total: 0 };
        let at = Instant::now();
        let before = CpuSnapshot {
            at,
            ticks: BTreeMap::from([("api", 100), ("postgres", 50)]),
            broker_jit: None,
            machine,
        };
        let after = CpuSnapshot {
            at,
            ticks: BTreeMap::from([("api", 100 + clock_ticks() as u64), ("broker", 7)]),
            broker_jit: Some(3),
            machine,
        };
        let split = before.until(&after);
        assert_eq!(split.cpu_seconds, BTreeMap::from([("api", 1.0)]));
        assert_eq!(split.micros_per(4), BTreeMap::from([("api", 250_000.0)]));
        assert_eq!(split.broker_jit_seconds, None);
    }

    #[test]
    fn jit_compiling_is_the_compiler_threads_share_of_a_window() {
        let machine = MachineTicks { busy: 0, total: 0 };
        let at = Instant::now();
        let hz = clock_ticks() as u64;
        let snapshot = |jit| CpuSnapshot {
            at,
            ticks: BTreeMap::new(),
            broker_jit: Some(jit),
            machine,
        };
        let split = snapshot(10).until(&snapshot(10 + 2 * hz));
        assert_eq!(split.broker_jit_seconds, Some(2.0));
        assert!(split
            .describe(1, "decision")
            .ends_with("; broker JIT compiling 2.0 CPU-s"));
        let idle = snapshot(10).until(&snapshot(10));
        assert!(!idle.describe(1, "decision").contains("JIT"));
    }

    #[test]
    fn jit_compiler_threads_are_told_by_their_cut_names() {
        assert!(is_jit_compiler_thread("C2 CompilerThre"));
        assert!(is_jit_compiler_thread("C1 CompilerThre"));
        assert!(!is_jit_compiler_thread("data-plane-kafk"));
        assert!(!is_jit_compiler_thread("GC Thread#0"));
    }

    #[test]
    fn jit_ticks_of_a_process_without_compiler_threads_are_zero() {
        assert_eq!(jit_compiler_ticks(std::process::id()), Some(0));
        assert_eq!(jit_compiler_ticks(u32::MAX), None);
    }

    #[test]
    fn a_child_that_exited_still_counts_in_its_parents_tree() {
        let me = std::process::id();
        let reaped = |stat: ProcStat| stat.cutime + stat.cstime;
        let before = ProcStat::read(me).expect("own stat");
        let tree_before = process_tree_ticks(me).expect("own tree");
        // About 0.4 s of CPU in a child, which has exited and been waited for by the end.
        let status = std::process::Command::new("awk")
            .arg("BEGIN { for (i = 0; i < 1e7; i++) s += i }")
            .status()
            .expect("awk runs");
        assert!(status.success());
        let after = ProcStat::read(me).expect("own stat");
        let child_ticks = reaped(after) - reaped(before);
        assert!(
            child_ticks >= 5,
            "the child's CPU time is in ours: {child_ticks} ticks"
        );
        let tree_after = process_tree_ticks(me).expect("own tree");
        assert!(tree_after >= tree_before + child_ticks);
    }

    #[test]
    fn this_process_and_its_tree_are_readable_here() {
        let me = std::process::id();
        assert!(ProcStat::read(me).is_some());
        let processes = Processes {
            postgres: Some(me),
            ..Processes::default()
        };
        let snapshot = processes.snapshot().expect("/proc is readable");
        assert!(snapshot.ticks.contains_key("load generator"));
        assert!(snapshot.ticks.contains_key("postgres"));
    }
}
