//! Parsing a firmware run's log (host side): every line the firmware prints for the host,
//! by the keywords of [`crate::keyword`].

use std::collections::BTreeMap;
use std::string::{String, ToString};
use std::vec::Vec;

use crate::keyword as kw;

/// What a firmware run printed for the host.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DeviceRun {
    /// Images by keyword (`sample`, `resample`, `interp`, `f32`, `input`, `recon`), in the
    /// order of their index.
    pub images: BTreeMap<String, Vec<Vec<u8>>>,
    /// `count NAME N` lines, in order, with the rest of the line (the layer shape).
    pub counts: Vec<(String, u64, String)>,
    /// `ram NAME N` lines.
    pub ram: Vec<(String, u64)>,
    /// The unit of the counts (`counts in UNIT`).
    pub unit: Option<String>,
    /// The sample count and seed the run announced (`generating N samples, seed S`).
    pub announced: Option<(usize, u64)>,
    /// The `exit CODE` line's code.
    pub exit: Option<i32>,
    /// Lines that start with a keyword but do not parse, or images out of order, each
    /// with its line number (1-based).
    pub malformed: Vec<(usize, String)>,
    /// The whole log.
    pub log: String,
}

/// A bracketed list of u8: `[1, 2, 3]`.
pub fn parse_bytes(list: &str) -> Option<Vec<u8>> {
    let inner = list.trim().strip_prefix('[')?.strip_suffix(']')?;
    if inner.trim().is_empty() {
        return Some(Vec::new());
    }
    inner
        .split(',')
        .map(|v| v.trim().parse::<u8>().ok())
        .collect()
}

/// `generating N samples, seed S (SOURCE)`: the count and the seed.
fn parse_generating(rest: &str) -> Option<(usize, u64)> {
    let (n, rest) = rest.split_once(" samples, seed ")?;
    let seed = rest.split(' ').next()?;
    Some((n.trim().parse().ok()?, seed.parse().ok()?))
}

/// Parses a firmware's log.
pub fn parse(log: &str) -> DeviceRun {
    let mut d = DeviceRun {
        log: log.to_string(),
        ..Default::default()
    };
    for (n, line) in log.lines().enumerate() {
        let (n, line) = (n + 1, line.trim_end());
        let Some((word, rest)) = line.split_once(' ') else {
            continue;
        };
        let ok = match word {
            kw::COUNT => {
                let mut r = rest.splitn(3, ' ');
                match (r.next(), r.next().map(str::parse::<u64>)) {
                    (Some(name), Some(Ok(v))) => {
                        let shape = r.next().unwrap_or("").to_string();
                        d.counts.push((name.to_string(), v, shape));
                        true
                    }
                    _ => false,
                }
            }
            kw::RAM => match rest.split_once(' ') {
                Some((name, v)) => match v.trim().parse() {
                    Ok(v) => {
                        d.ram.push((name.to_string(), v));
                        true
                    }
                    Err(_) => false,
                },
                None => false,
            },
            kw::EXIT => match rest.trim().parse() {
                Ok(code) => {
                    d.exit = Some(code);
                    true
                }
                Err(_) => false,
            },
            kw::GENERATING => match parse_generating(rest) {
                Some(a) => {
                    d.announced = Some(a);
                    true
                }
                None => false,
            },
            w if kw::INDEXED_IMAGES.contains(&w) => {
                let image = rest
                    .split_once(' ')
                    .and_then(|(k, list)| Some((k.parse::<usize>().ok()?, parse_bytes(list)?)));
                match image {
                    Some((k, px)) => {
                        let list = d.images.entry(w.to_string()).or_default();
                        // The K-th image must be the K-th of its kind: none lost, none twice.
                        if k != list.len() {
                            d.malformed.push((
                                n,
                                std::format!("{w} {k} follows {} image(s) of its kind", list.len()),
                            ));
                        }
                        list.push(px);
                        true
                    }
                    None => false,
                }
            }
            w if kw::SINGLE_IMAGES.contains(&w) => match parse_bytes(rest) {
                Some(px) => {
                    d.images.entry(w.to_string()).or_default().push(px);
                    true
                }
                None => false,
            },
            _ => {
                if let Some(unit) = line.strip_prefix(kw::COUNTS_IN) {
                    d.unit = Some(unit.trim().to_string());
                }
                true
            }
        };
        if !ok {
            d.malformed.push((n, line.to_string()));
        }
    }
    d
}

/// Why a log is not whole ([`DeviceRun::check_complete`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incomplete {
    /// A line that starts with a keyword does not parse.
    Malformed {
        /// Its line number, from 1.
        line: usize,
        /// The line.
        text: String,
    },
    /// No `generating N samples` line.
    NotAnnounced,
    /// The firmware printed another number of samples than it announced.
    Samples {
        /// Announced.
        announced: usize,
        /// Printed.
        printed: usize,
    },
    /// No `exit` line: the run was cut short.
    NoExit,
}

impl core::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Incomplete::Malformed { line, text } => {
                write!(f, "line {line} of the log does not parse: {text}")
            }
            Incomplete::NotAnnounced => {
                write!(
                    f,
                    "the log does not announce its samples (`generating N samples`)"
                )
            }
            Incomplete::Samples { announced, printed } => write!(
                f,
                "the firmware announced {announced} samples and printed {printed}"
            ),
            Incomplete::NoExit => write!(f, "the log has no `exit` line: the run was cut short"),
        }
    }
}

impl core::error::Error for Incomplete {}

impl DeviceRun {
    /// Whether the log is whole: it announced its samples and printed that many, it ended
    /// with an `exit` line, and no line that starts with a keyword failed to parse.
    pub fn check_complete(&self) -> Result<(), Incomplete> {
        if let Some((n, line)) = self.malformed.first() {
            return Err(Incomplete::Malformed {
                line: *n,
                text: line.clone(),
            });
        }
        let Some((announced, _)) = self.announced else {
            return Err(Incomplete::NotAnnounced);
        };
        let printed = self.images.get(kw::SAMPLE).map_or(0, Vec::len);
        if printed != announced {
            return Err(Incomplete::Samples { announced, printed });
        }
        if self.exit.is_none() {
            return Err(Incomplete::NoExit);
        }
        Ok(())
    }

    /// The `count NAME` value.
    pub fn count(&self, name: &str) -> Option<u64> {
        self.counts.iter().find(|c| c.0 == name).map(|c| c.1)
    }
}

/// One `bench NAME IN OUT KERNEL N` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchLine {
    /// The layer's name.
    pub name: String,
    /// Its inputs.
    pub inputs: u64,
    /// Its outputs.
    pub outputs: u64,
    /// The kernel measured.
    pub kernel: String,
    /// The measurement.
    pub count: u64,
}

/// A `bench` line that is not `bench NAME IN OUT KERNEL N` ([`parse_bench`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadBenchLine {
    /// Its line number, from 1.
    pub line: usize,
    /// The line.
    pub text: String,
}

impl core::fmt::Display for BadBenchLine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "line {}: `{}` is not `bench NAME IN OUT KERNEL N`",
            self.line, self.text
        )
    }
}

impl core::error::Error for BadBenchLine {}

/// The `bench` lines of a log, in order; an error names a `bench` line that does not parse.
pub fn parse_bench(log: &str) -> Result<Vec<BenchLine>, BadBenchLine> {
    let mut out = Vec::new();
    for (n, line) in log.lines().enumerate() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first() != Some(&kw::BENCH) {
            continue;
        }
        let bad = || BadBenchLine {
            line: n + 1,
            text: line.to_string(),
        };
        let [_, name, inp, out_, kernel, count] = f.as_slice() else {
            return Err(bad());
        };
        let num = |s: &str| s.parse::<u64>().map_err(|_| bad());
        out.push(BenchLine {
            name: name.to_string(),
            inputs: num(inp)?,
            outputs: num(out_)?,
            kernel: kernel.to_string(),
            count: num(count)?,
        });
    }
    Ok(out)
}
