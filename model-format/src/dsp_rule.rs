// Which targets run the DSP-extension kernels: the format's checksum loop and the engine's
// layers. The module `tinyvae_format::dsp_rule`, and `include!`d by this crate's build script
// (which sets `cfg(tinyvae_dsp)` from it); the engine's build script and a firmware's, which
// sizes its buffers for the engine, call the module, so that every side applies one rule.
//
// Arm's target features (`dsp` among them) are not visible to `cfg` on stable Rust, so the rule
// reads what decides them: the target (ARMv7E-M, `thumbv7em`, always has the extension), the
// `-C target-cpu` the build names (LLVM's models of the Cortex-M4, M7, M33, M35P, M52, M55 and
// M85 include it), then `-C target-feature=+dsp` or `-dsp`, the last one winning; a `dsp` in
// `CARGO_CFG_TARGET_FEATURE` (where a toolchain reports it) counts too.

/// CPUs whose LLVM model has the DSP extension.
const DSP_CPUS: [&str; 8] = [
    "cortex-m4",
    "cortex-m7",
    "cortex-m33",
    "cortex-m35p",
    "cortex-m52",
    "cortex-m55",
    "cortex-m85",
    "star-mc1",
];

/// [`has_dsp_extension`] for the target a build script builds for, from the environment
/// Cargo gives build scripts: `var` reads `TARGET`, `CARGO_ENCODED_RUSTFLAGS` and
/// `CARGO_CFG_TARGET_FEATURE` (empty when unset). The one call the engine's, the model
/// format's and the firmware's build scripts share.
pub fn build_target_has_dsp<S: AsRef<str>>(var: impl Fn(&'static str) -> S) -> bool {
    has_dsp_extension(
        var("TARGET").as_ref(),
        var("CARGO_ENCODED_RUSTFLAGS").as_ref(),
        var("CARGO_CFG_TARGET_FEATURE").as_ref(),
    )
}

/// True when code for `target`, built with the rustc flags `rustflags` (as Cargo passes them
/// to build scripts in `CARGO_ENCODED_RUSTFLAGS`: separated by 0x1f) and the reported target
/// features `cfg_features` (`CARGO_CFG_TARGET_FEATURE`: comma-separated), may use the DSP
/// extension's instructions (SMLAD, SXTB16).
pub fn has_dsp_extension(target: &str, rustflags: &str, cfg_features: &str) -> bool {
    if !target.starts_with("thumb") {
        return false;
    }
    let mut dsp = target.starts_with("thumbv7em") || cfg_features.split(',').any(|f| f == "dsp");
    for o in codegen_options(rustflags) {
        if let Some(cpu) = o.strip_prefix("target-cpu=") {
            dsp = target.starts_with("thumbv7em") || DSP_CPUS.contains(&cpu);
        } else if let Some(list) = o.strip_prefix("target-feature=") {
            for f in list.split(',') {
                match f {
                    "+dsp" => dsp = true,
                    "-dsp" => dsp = false,
                    _ => {}
                }
            }
        }
    }
    dsp
}

/// The `-C` options in `rustflags` (encoded as in [`has_dsp_extension`]), whether written
/// `-C opt=v`, `-Copt=v` or `--codegen opt=v`, in order.
fn codegen_options(rustflags: &str) -> impl Iterator<Item = &str> {
    let mut after_flag = false;
    rustflags.split('\x1f').filter_map(move |a| {
        if core::mem::replace(&mut after_flag, false) {
            return Some(a);
        }
        if a == "-C" || a == "--codegen" {
            after_flag = true;
            return None;
        }
        a.strip_prefix("--codegen=")
            .or_else(|| a.strip_prefix("-C").filter(|o| !o.is_empty()))
    })
}

/// The `-C target-cpu` the flags name last, if any.
pub fn target_cpu(rustflags: &str) -> Option<&str> {
    codegen_options(rustflags)
        .filter_map(|o| o.strip_prefix("target-cpu="))
        .last()
}

/// The CPU the DSP kernel's module assembly names in a `.cpu` directive, if it needs one.
/// Module assembly is assembled for the bare target, without what `-C target-cpu` adds:
/// ARMv7E-M has the extension already (`None`); elsewhere the CPU the flags name, else the
/// Cortex-M33 (the ARMv8-M Mainline core with the extension). Naming the CPU the whole image
/// is built for leaves other crates' assembly, assembled after it, as they expect.
pub fn asm_cpu(target: &str, rustflags: &str) -> Option<&'static str> {
    if target.starts_with("thumbv7em") {
        return None;
    }
    let cpu = target_cpu(rustflags).unwrap_or("cortex-m33");
    Some(
        DSP_CPUS
            .iter()
            .find(|c| **c == cpu)
            .map_or("cortex-m33", |c| *c),
    )
}

/// Whether `target`'s core has a 32 x 32 -> 64 multiply (`UMULL`, `UMLAL`): `Some(true)` on
/// the Thumb-2 M-profile targets (ARMv7-M, ARMv7E-M, ARMv8-M Mainline), `Some(false)` on
/// ARMv6-M (Cortex-M0, M0+) and ARMv8-M Baseline (M23), `None` elsewhere (the host). The
/// engine's requantization and the format's checksum build their 64-bit products from
/// 16-bit halves where it is `Some(false)`.
pub fn widening_multiply(target: &str) -> Option<bool> {
    let any = |ts: &[&str]| ts.iter().any(|t| target.starts_with(t));
    if any(&["thumbv7m", "thumbv7em", "thumbv8m.main"]) {
        Some(true)
    } else if any(&["thumbv6m", "thumbv8m.base"]) {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::{asm_cpu, has_dsp_extension as dsp, widening_multiply};

    #[test]
    fn targets_cpus_and_features() {
        let x = "\x1f";
        assert!(dsp("thumbv7em-none-eabihf", "", ""));
        assert!(dsp(
            "thumbv7em-none-eabi",
            &format!("-C{x}link-arg=-Tlink.x"),
            ""
        ));
        assert!(!dsp("thumbv7m-none-eabi", "", ""));
        assert!(!dsp("thumbv6m-none-eabi", "", ""));
        assert!(!dsp("thumbv8m.main-none-eabihf", "", ""));
        assert!(!dsp(
            "x86_64-unknown-linux-gnu",
            "-Ctarget-cpu=cortex-m33",
            ""
        ));
        // The CPU, in each spelling.
        let m33 = [
            "-C\x1ftarget-cpu=cortex-m33",
            "-Ctarget-cpu=cortex-m33",
            "--codegen=target-cpu=cortex-m33",
        ];
        for f in m33 {
            assert!(dsp("thumbv8m.main-none-eabihf", f, ""), "{f:?}");
        }
        assert!(!dsp(
            "thumbv8m.main-none-eabihf",
            "-Ctarget-cpu=cortex-m23",
            ""
        ));
        // Features, the last word winning, also over the CPU.
        assert!(dsp("thumbv8m.main-none-eabi", "-Ctarget-feature=+dsp", ""));
        assert!(!dsp(
            "thumbv7em-none-eabihf",
            "-Ctarget-feature=+fp16,-dsp",
            ""
        ));
        // The widening multiply, by architecture.
        assert_eq!(widening_multiply("thumbv7m-none-eabi"), Some(true));
        assert_eq!(widening_multiply("thumbv7em-none-eabihf"), Some(true));
        assert_eq!(widening_multiply("thumbv8m.main-none-eabihf"), Some(true));
        assert_eq!(widening_multiply("thumbv6m-none-eabi"), Some(false));
        assert_eq!(widening_multiply("thumbv8m.base-none-eabi"), Some(false));
        assert_eq!(widening_multiply("x86_64-unknown-linux-gnu"), None);
        assert!(!dsp(
            "thumbv8m.main-none-eabihf",
            &format!("-Ctarget-cpu=cortex-m33{x}-C{x}target-feature=-dsp"),
            ""
        ));
        assert!(dsp(
            "thumbv8m.main-none-eabihf",
            &format!("-Ctarget-feature=-dsp{x}-Ctarget-feature=+dsp"),
            ""
        ));
        assert_eq!(
            asm_cpu("thumbv7em-none-eabihf", "-Ctarget-cpu=cortex-m7"),
            None
        );
        assert_eq!(
            asm_cpu("thumbv8m.main-none-eabihf", m33[0]),
            Some("cortex-m33")
        );
        assert_eq!(
            asm_cpu("thumbv8m.main-none-eabihf", "-Ctarget-cpu=cortex-m55"),
            Some("cortex-m55")
        );
        assert_eq!(
            asm_cpu("thumbv8m.main-none-eabihf", "-Ctarget-feature=+dsp"),
            Some("cortex-m33")
        );
        // A toolchain that reports the feature.
        assert!(dsp("thumbv8m.main-none-eabihf", "", "mclass,dsp,thumb2"));
    }
}
