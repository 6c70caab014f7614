//! `cargo xtask --help` and `cargo xtask COMMAND --help`: each command's synopsis and what
//! it does, from one table.

/// (command, synopsis of its arguments, what it does).
pub const COMMANDS: [(&str, &str, &str); 22] = [
    (
        "demo",
        "[--run RUN_DIR]",
        "train the conv VAE on the bundled MNIST subset (or take RUN_DIR's checkpoint, trained \
         by `trainer train --out RUN_DIR` on any data: its own data is used to export), export \
         int8, run on the emulated Cortex-M4F, hold every image against the host engine, write \
         out/samples.png, out/samples-mixture.png, out/classes.png, out/encode.png and out/counts.md",
    ),
    (
        "test",
        "[GROUP...]",
        "every test, or the groups named (lint, host, firmware, pipeline, boards); ends with \
         `N passed, M failed`",
    ),
    ("setup", "", "install or check the prerequisites only"),
    (
        "qemu",
        "BOARD BIN [--model FILE]",
        "build and run one firmware binary under QEMU (boards: mps2-an386, mps2-an385, \
         mps2-an500, mps2-an505, microbit; binaries: selftest, dspcheck, bench, vae, f32dec, \
         cycles, misaligned). `vae` holds every image against the host engine and writes \
         out/qemu-BOARD.png; `f32dec` runs the decoder.f32 beside the model file",
    ),
    (
        "flash",
        "--board NAME [--model FILE] [--build-only] [--probe VID:PID[:SERIAL]] [--port PATH]",
        "build the firmware for a real board (nrf52840dk, rp2040, rp2350, b-l475e-iot01a) with \
         a model, flash it with probe-rs, print its log (RTT, or the ST-LINK's serial port) and \
         hold its samples against the host engine",
    ),
    (
        "fit",
        "--model FILE [--board NAME]...",
        "what the vae firmware with the model needs on every board (or those named): flash \
         (firmware code and model) and RAM (static, the model's buffers, the firmware's own \
         stack) against the board's; the first run builds each board's firmware once",
    ),
    (
        "time-fresh",
        "[--apt] [--keep] [--only demo|test]",
        "time `cargo xtask demo` and `cargo xtask test` as a new user meets them: a clean \
         clone of HEAD, an empty Cargo home, the thumb targets removed first (and with --apt, \
         as root, QEMU and the Arm GCC); writes results/fresh-times.md (with --only, one \
         command, printed only)",
    ),
    (
        "fallback-check",
        "",
        "build and run the self-test with the Debian toolchain fallback",
    ),
    (
        "counts",
        "",
        "instructions per inference and layer, flash and RAM, every preset and board \
         (results/qemu-counts.md)",
    ),
    (
        "cycles",
        "[--profile]",
        "Cortex-M4 cycles estimated from the executed instruction mix \
         (results/m4-cycle-estimate.md); --profile: per function too",
    ),
    (
        "lib-cost",
        "",
        "what the library costs a firmware per build profile (release, size, debug): \
         validation, sampling and decode instructions, peak stack, code \
         (results/library-cost.md)",
    ),
    (
        "bench",
        "",
        "instructions per dense layer and per MAC for each kernel (results/kernels.md)",
    ),
    (
        "f32",
        "",
        "the f32 decoder path beside int8: instructions, flash, PSNR (results/f32-vs-int8.md)",
    ),
    (
        "bench-train",
        "DATA DENSE_SCRIPT CONV_SCRIPT [EPOCHS] [SEED]",
        "training speed and test -ELBO of both models beside the PyTorch reference scripts",
    ),
    (
        "bench-ops",
        "",
        "training ops per call, candle's beside the fused ones (results/train-ops.md)",
    ),
    (
        "quality",
        "DATA DENSE_SCRIPT CONV_SCRIPT [EPOCHS]",
        "both VAEs beside PyTorch over three seeds; every preset's -ELBO, sample score and size",
    ),
    (
        "priors",
        "DATA [EPOCHS]",
        "N(0, I), the aggregate posterior and the learned mixture for every preset: sample score, Fréchet distance, nearest training image, copy test, bytes, instructions",
    ),
    (
        "logs",
        "",
        "the firmware logs the shared log parser is tested on (protocol/tests/logs/)",
    ),
    (
        "header",
        "",
        "c/include/tinyvae.h, the C API's header, from c/src/lib.rs with cbindgen",
    ),
    (
        "help",
        "[COMMAND]",
        "this text, or one command's (also `--help` after any command)",
    ),
    (
        "where",
        "",
        "the tree this xtask works in (found at run time: a copied tree works in itself)",
    ),
    ("version", "", "xtask's version (the workspace's)"),
];

/// Wraps `text` at 88 columns, every line indented by `indent` spaces.
fn wrapped(text: &str, indent: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for w in text.split_whitespace() {
        if !line.is_empty() && indent + line.len() + 1 + w.len() > 88 {
            out += &format!("{}{line}\n", " ".repeat(indent));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line += w;
    }
    out + &format!("{}{line}\n", " ".repeat(indent))
}

/// The whole usage text.
pub fn all() -> String {
    let mut s = String::from("usage: cargo xtask <command> [arguments]\n\ncommands:\n");
    for (name, args, what) in COMMANDS {
        s += &format!("  {name} {args}\n");
        s += &wrapped(what, 6);
    }
    s
}

/// One command's usage, if it is one.
pub fn of(command: &str) -> Option<String> {
    COMMANDS
        .iter()
        .find(|c| c.0 == command)
        .map(|(name, args, what)| {
            format!("usage: cargo xtask {name} {args}\n\n{}", wrapped(what, 2))
        })
}

#[cfg(test)]
mod tests {
    /// Every command main.rs dispatches has its usage, and no usage names a command that
    /// does not exist.
    #[test]
    fn every_command_has_its_usage() {
        let main = include_str!("main.rs");
        let dispatched: Vec<&str> = main
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Some(\""))
            .filter_map(|l| l.split('"').next())
            .collect();
        let documented: Vec<&str> = super::COMMANDS.iter().map(|c| c.0).collect();
        let mut a = dispatched.clone();
        let mut b = documented.clone();
        a.sort();
        b.sort();
        assert_eq!(a, b);
    }
}
