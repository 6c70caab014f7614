//! The per-inference count tables: each counted stage of a model, its multiply-accumulates and its counts.

use tinyvae_format::Model;
use tinyvae_protocol::log::DeviceRun;

use crate::firmware::Board;

/// The layer a count names (`decode.layerN`, `encode.layerN`).
fn layer_of<'a>(model: &Model<'a>, name: &str) -> Option<tinyvae_format::Layer<'a>> {
    let (net, i) = name.split_once(".layer")?;
    let net = match net {
        "decode" => &model.decoder,
        "encode" => &model.encoder,
        _ => return None,
    };
    net.layers.get(i.parse::<usize>().ok()?).copied()
}

/// Multiply-accumulates of a counted stage of `model`, (useful, executed: padding taps
/// included): `decode` and `encode` (whole networks) or `decode.layerN` and
/// `encode.layerN`; `None` for other counts.
pub fn layer_macs(model: &Model<'_>, name: &str) -> Option<(u64, u64)> {
    let net = |n: &str| match n {
        "decode" => Some(&model.decoder),
        "encode" => Some(&model.encoder),
        _ => None,
    };
    let macs = |l: &tinyvae_format::Layer<'_>| (l.useful_macs(), l.macs());
    match name.split_once(".layer") {
        None => net(name).map(|n| {
            n.layers
                .iter()
                .map(macs)
                .fold((0, 0), |(u, e), (a, b)| (u + a, e + b))
        }),
        Some((n, i)) => net(n)?.layers.get(i.parse::<usize>().ok()?).map(macs),
    }
}

/// The count table as markdown.
pub fn count_table(board: Board, model: &Model<'_>, d: &DeviceRun) -> String {
    let mut s = format!(
        "| {} ({}) | instructions | per useful MAC | per executed MAC (padding taps included) \
         |\n|---|---:|---:|---:|\n",
        board.name, board.cpu
    );
    for (name, n, shape) in &d.counts {
        let per = |m: u64| format!("{:.2}", *n as f64 / m.max(1) as f64);
        let (useful, executed) = layer_macs(model, name)
            .map_or((String::new(), String::new()), |(u, e)| (per(u), per(e)));
        let label = match layer_of(model, name) {
            Some(l) => format!("{name} ({l:#})"),
            None if shape.is_empty() => name.clone(),
            None => format!("{name} {}", shape.trim()),
        };
        s += &format!("| {label} | {n} | {useful} | {executed} |\n");
    }
    for (name, n) in &d.ram {
        s += &format!("| RAM {name} (bytes) | {n} | | |\n");
    }
    s
}
