//! Chooses the checksum's loop (src/check.rs): `cfg(tinyvae_dsp)` where the target has the
//! Arm DSP extension (UMAAL), by the rule in src/dsp_rule.rs;
//! `cfg(tinyvae_umull)` where it has UMULL/UMLAL; `cfg(tinyvae_no_umull)` where it has
//! neither (the 64-bit product from 16-bit halves).
#[allow(dead_code)]
mod dsp_rule {
    include!("src/dsp_rule.rs");
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(tinyvae_dsp)");
    println!("cargo::rustc-check-cfg=cfg(tinyvae_umull)");
    println!("cargo::rustc-check-cfg=cfg(tinyvae_no_umull)");
    println!("cargo::rerun-if-env-changed=TARGET");
    println!("cargo::rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    println!("cargo::rerun-if-changed=src/dsp_rule.rs");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if dsp_rule::build_target_has_dsp(var) {
        println!("cargo::rustc-cfg=tinyvae_dsp");
    }
    match dsp_rule::widening_multiply(&var("TARGET")) {
        Some(true) => println!("cargo::rustc-cfg=tinyvae_umull"),
        Some(false) => println!("cargo::rustc-cfg=tinyvae_no_umull"),
        None => {}
    }
}
