//! Checks and installs what the commands need: the Rust thumb targets, qemu-system-arm and
//! defmt-print. Each step says what it does; where it cannot do it, it says what to run.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{project_root, run, status_ok};

/// The thumb targets the firmware and the no_std crates build for.
pub const THUMB_TARGETS: [&str; 4] = [
    "thumbv7em-none-eabihf",
    "thumbv7m-none-eabi",
    "thumbv6m-none-eabi",
    "thumbv8m.main-none-eabihf",
];
/// defmt-print's pinned version (it must match the defmt wire format of the firmware's defmt).
pub const DEFMT_PRINT_VERSION: &str = "1.2.0";

/// Every prerequisite, in order.
pub fn all() -> Result<()> {
    thumb_targets()?;
    qemu()?;
    defmt_print()?;
    Ok(())
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The thumb targets of the pinned toolchain, added with rustup where missing.
pub fn thumb_targets() -> Result<()> {
    let root = project_root();
    let Some(installed) = output(
        Command::new("rustup")
            .args(["target", "list", "--installed"])
            .current_dir(&root),
    ) else {
        bail!(
            "rustup is not available. Install it from https://rustup.rs (the project pins Rust \
             1.95.0 in rust-toolchain.toml), then run this command again."
        );
    };
    let missing: Vec<&str> = THUMB_TARGETS
        .iter()
        .copied()
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if missing.is_empty() {
        println!("[setup] Rust targets: {} present", THUMB_TARGETS.join(", "));
        return Ok(());
    }
    println!(
        "[setup] adding Rust targets with rustup: {}",
        missing.join(" ")
    );
    let ok = status_ok(
        Command::new("rustup")
            .args(["target", "add"])
            .args(&missing)
            .current_dir(&root),
    );
    if !ok {
        println!(
            "[setup] rustup could not download {}; falling back to Debian's Rust packages",
            missing.join(", ")
        );
        let root = debian_rust()?;
        crate::firmware::use_debian_toolchain(root);
    }
    Ok(())
}

/// Where the Debian fallback toolchain is extracted.
pub fn debian_root() -> std::path::PathBuf {
    project_root().join(".tools").join("debian-rust")
}

fn apt_candidate(pkg: &str) -> Option<String> {
    let out = output(Command::new("apt-cache").args(["policy", pkg]))?;
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Candidate: "))
        .filter(|v| *v != "(none)")
        .map(str::to_string)
}

fn apt_depends(pkg: &str, prefix: &str) -> Option<String> {
    let out = output(Command::new("apt-cache").args(["depends", pkg]))?;
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|d| d.starts_with(prefix))
        .map(str::to_string)
}

/// The fallback for machines where rustup cannot download the thumb targets: Debian's Rust
/// (rustc-web, libstd-rust-web, rust-web-src, cargo-web) and its LLVM's lld, downloaded with
/// `apt-get download` and extracted with `dpkg-deb -x` into `.tools/debian-rust`, never
/// installed over rustup. The firmware is then built with `-Zbuild-std=core` from that
/// rustc's own sources. Returns the extracted root.
pub fn debian_rust() -> Result<std::path::PathBuf> {
    let root = debian_root();
    let marker = root.join(".complete");
    if marker.exists() {
        println!("[setup] using Debian's Rust from {}", root.display());
        return Ok(root);
    }
    if output(Command::new("apt-get").arg("--version")).is_none() {
        bail!(
            "rustup cannot download the thumb targets and this system has no apt-get for the \
             fallback. Install the targets with `rustup target add {}` where the Rust \
             distribution server is reachable.",
            THUMB_TARGETS.join(" ")
        );
    }
    let rustc = apt_candidate("rustc-web");
    let src = apt_candidate("rust-web-src");
    let (Some(rustc), Some(src)) = (rustc, src) else {
        bail!(
            "rustup cannot download the thumb targets, and apt knows no rustc-web / \
             rust-web-src packages for the fallback (run `apt-get update` as root first, or \
             install the targets with rustup where its server is reachable)"
        );
    };
    if rustc != src {
        bail!(
            "rustc-web {rustc} and rust-web-src {src} differ: the fallback needs one Rust version"
        );
    }
    let std_pkg = apt_depends("libstd-rust-web-dev", "libstd-rust-web-")
        .context("cannot resolve libstd-rust-web-dev's runtime package")?;
    let llvm =
        apt_depends(&std_pkg, "libllvm").context("cannot resolve the LLVM of Debian's Rust")?;
    let lld = llvm.replace("libllvm", "lld-");
    let mut pkgs = vec![
        "rustc-web".to_string(),
        "cargo-web".into(),
        "libstd-rust-web-dev".into(),
        std_pkg,
        "rust-web-src".into(),
        llvm,
        lld,
    ];
    // cargo-web's libraries that a Rust developer's machine may lack.
    for lib in [
        "libgit2-1.5",
        "libssh2-1",
        "libhttp-parser2.9",
        "libmbedtls14",
        "libmbedx509-1",
        "libmbedcrypto7",
    ] {
        if apt_candidate(lib).is_some() {
            pkgs.push(lib.into());
        }
    }
    let debs = project_root().join(".tools").join("debs");
    std::fs::create_dir_all(&debs)?;
    println!(
        "[setup] downloading Debian's Rust {rustc}: {}",
        pkgs.join(" ")
    );
    run(Command::new("apt-get")
        .arg("download")
        .args(&pkgs)
        .current_dir(&debs))?;
    std::fs::create_dir_all(&root)?;
    for e in std::fs::read_dir(&debs)? {
        let path = e?.path();
        if path.extension().is_some_and(|x| x == "deb") {
            run(Command::new("dpkg-deb").arg("-x").arg(&path).arg(&root))?;
        }
    }
    std::fs::write(&marker, &rustc)?;
    println!(
        "[setup] Debian's Rust {rustc} extracted to {}",
        root.display()
    );
    Ok(root)
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_some_and(|s| s.trim() == "0")
}

fn os_release() -> (String, String) {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    (field("ID"), field("VERSION_CODENAME"))
}

/// qemu-system-arm with the MPS2 machines; installed with apt on Debian or Ubuntu as root.
pub fn qemu() -> Result<()> {
    if let Some(v) = output(Command::new("qemu-system-arm").arg("--version")) {
        let machines =
            output(Command::new("qemu-system-arm").args(["-machine", "help"])).unwrap_or_default();
        let wanted: Vec<&str> = crate::firmware::BOARDS
            .iter()
            .filter_map(|b| b.machine)
            .collect();
        let lacking: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|m| {
                !machines
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(*m))
            })
            .collect();
        if lacking.is_empty() {
            println!("[setup] {}", v.lines().next().unwrap_or("qemu-system-arm"));
            return Ok(());
        }
        bail!(
            "qemu-system-arm is installed but lacks the machines {}: install QEMU 6.0 or newer",
            lacking.join(", ")
        );
    }
    let (id, codename) = os_release();
    let debian_like = id == "debian" || id == "ubuntu";
    if !debian_like || !is_root() {
        let how = match id.as_str() {
            "debian" if codename == "bookworm" => {
                "echo 'deb http://deb.debian.org/debian bookworm-backports main' | sudo tee \
                 /etc/apt/sources.list.d/bookworm-backports.list && sudo apt-get update && \
                 sudo apt-get install -t bookworm-backports qemu-system-arm"
            }
            "debian" | "ubuntu" => "sudo apt-get update && sudo apt-get install qemu-system-arm",
            "fedora" => "sudo dnf install qemu-system-arm",
            "arch" => "sudo pacman -S qemu-system-arm",
            _ if cfg!(target_os = "macos") => "brew install qemu",
            _ => "install QEMU (qemu-system-arm, version 6.0 or newer) with your package manager",
        };
        bail!("qemu-system-arm is not installed. Install it with:\n    {how}\nthen run this command again.");
    }
    if id == "debian" && codename == "bookworm" {
        // bookworm's own QEMU 7.2 would remove the newer qemu-utils these machines carry:
        // take qemu-system-arm from bookworm-backports instead.
        let list = Path::new("/etc/apt/sources.list.d/tinyvae-bookworm-backports.sources");
        let have = std::fs::read_dir("/etc/apt/sources.list.d")
            .map(|d| {
                d.flatten().any(|e| {
                    std::fs::read_to_string(e.path())
                        .is_ok_and(|s| s.contains("bookworm-backports"))
                })
            })
            .unwrap_or(false)
            || std::fs::read_to_string("/etc/apt/sources.list")
                .is_ok_and(|s| s.contains("bookworm-backports"));
        if !have {
            println!(
                "[setup] adding the bookworm-backports suite: {}",
                list.display()
            );
            std::fs::write(
                list,
                "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\n\
                 Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
            )
            .context("writing the apt source for bookworm-backports")?;
        }
        println!("[setup] installing qemu-system-arm from bookworm-backports with apt");
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(["-t", "bookworm-backports", "qemu-system-arm"])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    } else {
        println!("[setup] installing qemu-system-arm with apt");
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "qemu-system-arm",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    if output(Command::new("qemu-system-arm").arg("--version")).is_none() {
        bail!("apt installed qemu-system-arm but it does not run");
    }
    Ok(())
}

/// defmt-print at the pinned version, with `cargo install --debug`: unoptimized it builds in
/// half the time, and the logs it decodes are a few kilobytes.
pub fn defmt_print() -> Result<()> {
    if let Some(v) = output(Command::new("defmt-print").arg("--version")) {
        if v.contains(DEFMT_PRINT_VERSION) {
            println!("[setup] {}", v.trim());
            return Ok(());
        }
        println!("[setup] found {}, want {DEFMT_PRINT_VERSION}", v.trim());
    }
    println!(
        "[setup] installing defmt-print {DEFMT_PRINT_VERSION} with cargo install (under a minute)"
    );
    run(Command::new("cargo").args([
        // Unoptimized and without debug information: it decodes a few kilobytes per run.
        "--config",
        "profile.dev.debug=false",
        "install",
        "--debug",
        "defmt-print",
        "--locked",
        "--version",
        DEFMT_PRINT_VERSION,
    ]))
    .context("cargo install defmt-print failed; it needs access to crates.io")?;
    Ok(())
}

/// The probe-rs version `cargo xtask flash` installs when none is found.
const PROBE_RS_VERSION: &str = "0.32.0";

/// probe-rs, which flashes real boards and prints their defmt log over RTT: found on the PATH,
/// or installed with `cargo install probe-rs-tools` (it needs libudev's headers on Linux, which
/// are installed with apt where that is possible).
pub fn probe_rs() -> Result<()> {
    if let Some(v) = output(Command::new("probe-rs").arg("--version")) {
        println!("[setup] {}", v.lines().next().unwrap_or("probe-rs"));
        return Ok(());
    }
    if cfg!(target_os = "linux")
        && output(Command::new("pkg-config").args(["--exists", "libudev"])).is_none()
    {
        let (id, _) = os_release();
        if (id == "debian" || id == "ubuntu") && is_root() {
            println!("[setup] probe-rs needs libudev's headers");
            apt_install(&["libudev-dev", "pkg-config"])?;
        } else {
            bail!(
                "probe-rs is not installed, and building it needs libudev's headers. Install \
                 them (Debian/Ubuntu: sudo apt-get install libudev-dev pkg-config), or probe-rs \
                 itself (https://probe.rs/docs/getting-started/installation/), then run this \
                 command again."
            );
        }
    }
    println!("[setup] installing probe-rs {PROBE_RS_VERSION} with cargo install (several minutes)");
    run(Command::new("cargo").args([
        "install",
        "probe-rs-tools",
        "--locked",
        "--version",
        PROBE_RS_VERSION,
    ]))
    .context("cargo install probe-rs-tools failed; it needs access to crates.io")?;
    Ok(())
}

/// Installs Debian packages with apt (as root on Debian or Ubuntu); elsewhere says what to
/// install.
pub fn apt_install(packages: &[&str]) -> Result<()> {
    let (id, _) = os_release();
    if !((id == "debian" || id == "ubuntu") && is_root()) {
        bail!(
            "install these packages (Debian/Ubuntu names): {}; then run this command again",
            packages.join(" ")
        );
    }
    println!("[setup] installing {} with apt", packages.join(" "));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

/// cbindgen's pinned version: the C header `include/tinyvae.h` is its output, and another
/// version may word it differently.
pub const CBINDGEN_VERSION: &str = "0.29.4";

/// cbindgen at the pinned version, installed with `cargo install --debug` into
/// `.tools/cbindgen` (half a minute; an optimized build takes a minute and saves nothing on
/// one small crate); returns the binary.
pub fn cbindgen() -> Result<std::path::PathBuf> {
    let root = project_root().join(".tools/cbindgen");
    let bin = root.join("bin/cbindgen");
    if output(Command::new(&bin).arg("--version")).is_some_and(|v| v.contains(CBINDGEN_VERSION)) {
        return Ok(bin);
    }
    println!("[setup] installing cbindgen {CBINDGEN_VERSION} with cargo install (half a minute)");
    run(Command::new("cargo")
        .args([
            // Unoptimized and without debug information: the tool runs once, on one file.
            "--config",
            "profile.dev.debug=false",
            "install",
            "--debug",
            "cbindgen",
            "--locked",
            "--version",
            CBINDGEN_VERSION,
            "--root",
        ])
        .arg(&root))
    .context("cargo install cbindgen failed; it needs access to crates.io")?;
    Ok(bin)
}

/// arm-none-eabi-gcc with newlib (for the C example): found, or installed with apt
/// (`gcc-arm-none-eabi`, `libnewlib-arm-none-eabi`) on Debian or Ubuntu as root; elsewhere
/// it says what to install.
pub fn arm_gcc() -> Result<()> {
    let newlib = || {
        output(Command::new("arm-none-eabi-gcc").args([
            "-mcpu=cortex-m4",
            "-mthumb",
            "-mfloat-abi=hard",
            "-mfpu=fpv4-sp-d16",
            "-print-file-name=librdimon.a",
        ]))
        .is_some_and(|p| Path::new(p.trim()).is_absolute())
    };
    if let Some(v) = output(Command::new("arm-none-eabi-gcc").arg("--version")) {
        if newlib() {
            println!(
                "[setup] {}",
                v.lines().next().unwrap_or("arm-none-eabi-gcc")
            );
            return Ok(());
        }
    }
    apt_install(&["gcc-arm-none-eabi", "libnewlib-arm-none-eabi"])
        .context("the C example needs arm-none-eabi-gcc and newlib")?;
    if !newlib() {
        bail!("apt installed arm-none-eabi-gcc, but it finds no newlib (librdimon.a)");
    }
    Ok(())
}
