//! The firmware on the emulated boards without a trained model: self-test, kernel checks, the harness's failures, the flash budget.

use std::time::Duration;

use anyhow::bail;
use tinyvae_protocol::ExitCode;

use crate::{firmware, kernels, pipeline};

use super::Tally;

/// The firmware on the emulated boards without a trained model: builds, the engine's
/// self-test, the kernels against each other, the harness's own failures; the flash budget.
pub(super) fn emulated(t: &mut Tally) {
    for board in firmware::selftest_boards() {
        // The binaries this group runs (clippy has compiled every binary for every board).
        // The kernel check runs on the emulated boards, the Cortex-M0 with smaller shapes.
        let kernel_check =
            firmware::qemu_boards().contains(&board) || board == firmware::m0_board();
        let bins: &[&str] = if kernel_check {
            &[
                "selftest",
                "dspcheck",
                "fail-assert",
                "fail-panic",
                "fail-hang",
            ]
        } else {
            &["selftest", "fail-assert", "fail-panic", "fail-hang"]
        };
        let elfs = match firmware::build_bins(board, bins, &[]) {
            Ok(e) => e,
            Err(e) => {
                t.record(&format!("firmware build ({})", board.name), Err(e));
                continue;
            }
        };
        t.record(&format!("firmware build ({})", board.name), Ok(()));
        let limit = Duration::from_secs(120);
        t.record(&format!("selftest on {}", board.name), {
            firmware::run_qemu(board, &elfs.join("selftest"), limit).and_then(|o| {
                print!("{}", o.log);
                if o.code != Some(0) {
                    bail!("exit code {:?}", o.code);
                }
                firmware::check_expected("selftest", &o.log)
            })
        });
        // The DSP kernel against the portable ones on random layers (on the M3: the portable
        // tiled kernel against the row-major one; on the M0: the ARMv6-M kernel against both),
        // and two inputs at once (sharing each widened weight on the DSP cores).
        if kernel_check {
            let (simd, v6m) = (board.dsp, board.target.starts_with("thumbv6m"));
            t.record(
                &format!("kernels bit-exact on random layers on {}", board.name),
                firmware::run_qemu(board, &elfs.join("dspcheck"), limit).and_then(|o| {
                    print!("{}", o.log);
                    if o.code != Some(0) {
                        bail!("exit code {:?}", o.code);
                    }
                    let ran_dsp = !o.log.contains("; 0 ran the DSP kernel");
                    if ran_dsp != simd {
                        bail!("the DSP kernel should run here: {simd}; it ran: {ran_dsp}");
                    }
                    let ran_v6m = !o.log.contains("; 0 ran the ARMv6-M kernel");
                    if ran_v6m != v6m {
                        bail!("the ARMv6-M kernel should run here: {v6m}; it ran: {ran_v6m}");
                    }
                    let shared = o.log.contains("shared each widened weight: true");
                    if shared != simd {
                        bail!("two inputs should share the widened weights here: {simd}; they did: {shared}");
                    }
                    Ok(())
                }),
            );
        }
        // The harness must see failures: each of these is built to fail.
        for (bin, want, limit) in [
            ("fail-assert", Some(ExitCode::CheckFailed.code()), limit),
            ("fail-panic", Some(ExitCode::Panic.code()), limit),
            ("fail-hang", None, Duration::from_secs(1)),
        ] {
            t.record(
                &format!("harness reports {bin} on {} as a failure", board.name),
                firmware::run_qemu(board, &elfs.join(bin), limit).and_then(|o| {
                    // The log's own exit line says the same as the emulator's status (a
                    // hang prints none).
                    let logged = pipeline::parse(&o.log).exit;
                    if o.code == want && logged == want {
                        Ok(())
                    } else if o.code == want {
                        bail!(
                            "exit {want:?}, but the log's exit line says {logged:?}; log:\n{}",
                            o.log
                        )
                    } else {
                        bail!("expected exit {want:?}, got {:?}; log:\n{}", o.code, o.log)
                    }
                }),
            );
        }
    }

    // The flash budget, held: the product firmware, size profile, without its model.
    if !firmware::using_debian_toolchain() {
        t.record(
            "vae firmware (size profile, Cortex-M4F) fits 32 KiB of flash without its model",
            kernels::size_profile_flash().and_then(|flash| {
                println!("  {flash} bytes of {}", kernels::FLASH_BUDGET);
                if flash >= kernels::FLASH_BUDGET {
                    bail!(
                        "{flash} bytes: over the {}-byte budget",
                        kernels::FLASH_BUDGET
                    );
                }
                Ok(())
            }),
        );
    }
}
