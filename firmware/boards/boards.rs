// Every board, described once: `firmware/build.rs` writes the selected board's memory.x from
// it and checks its feature, and xtask reads its target, QEMU machine, sizes and probe-rs
// chip from it (both `include!` this file). Adding a board: a line here and its feature in
// firmware/Cargo.toml (xtask's tests check that every board here has one).

/// A board the firmware builds for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Board {
    /// Name used on the command line and in results.
    pub name: &'static str,
    /// Rust target.
    pub target: &'static str,
    /// The Cargo feature that selects it (firmware/Cargo.toml).
    pub feature: &'static str,
    /// The core has the DSP extension and the engine's DSP kernel runs on it. The engine decides
    /// that from the target and its flags (engine/src/dsp_rule.rs, firmware/.cargo/config.toml);
    /// xtask's tests hold this field to the same rule.
    pub dsp: bool,
    /// QEMU machine, for emulated boards.
    pub machine: Option<&'static str>,
    /// CPU, for the logs.
    pub cpu: &'static str,
    /// Where the program's flash region starts.
    pub flash_origin: u64,
    /// Flash bytes for the program (after a second-stage bootloader, if any).
    pub flash: u64,
    /// Where RAM starts.
    pub ram_origin: u64,
    /// RAM bytes.
    pub ram: u64,
    /// The counter's clock period in ns, as (numerator, denominator), on emulated boards: the
    /// machine's system clock, which SysTick counts (src/counter.rs turns ticks into
    /// instructions with it). Unused on real boards, which count core cycles.
    pub tick_ns: (u64, u64),
    /// probe-rs's name for the chip, for real boards.
    pub probe: Option<&'static str>,
    /// A second-stage bootloader's region (origin, bytes) in front of the program.
    pub boot2: Option<(u64, u64)>,
    /// What the memory map is, for memory.x's comment.
    pub note: &'static str,
}

/// All boards: the emulated ones first.
pub const BOARDS: [Board; 7] = [
    Board {
        name: "mps2-an386",
        target: "thumbv7em-none-eabihf",
        feature: "qemu-mps2-an386",
        dsp: true,
        machine: Some("mps2-an386"),
        cpu: "Cortex-M4F",
        flash_origin: 0,
        flash: 4 << 20,
        ram_origin: 0x2000_0000,
        ram: 4 << 20,
        tick_ns: (40, 1),
        probe: None,
        boot2: None,
        note: "QEMU mps2-an386 (Cortex-M4F): ZBT SSRAM1 as code memory, SSRAM2/3 as data memory",
    },
    Board {
        name: "mps2-an385",
        target: "thumbv7m-none-eabi",
        feature: "qemu-mps2-an385",
        dsp: false,
        machine: Some("mps2-an385"),
        cpu: "Cortex-M3",
        flash_origin: 0,
        flash: 4 << 20,
        ram_origin: 0x2000_0000,
        ram: 4 << 20,
        tick_ns: (40, 1),
        probe: None,
        boot2: None,
        note: "QEMU mps2-an385 (Cortex-M3): the AN386's memory map",
    },
    Board {
        name: "microbit",
        target: "thumbv6m-none-eabi",
        feature: "qemu-microbit",
        dsp: false,
        machine: Some("microbit"),
        cpu: "Cortex-M0",
        flash_origin: 0,
        flash: 256 << 10,
        ram_origin: 0x2000_0000,
        ram: 16 << 10,
        tick_ns: (125, 2),
        probe: None,
        boot2: None,
        note: "QEMU microbit (nRF51822, Cortex-M0): 256 KiB flash, 16 KiB RAM",
    },
    Board {
        name: "mps2-an500",
        target: "thumbv7em-none-eabihf",
        feature: "qemu-mps2-an500",
        dsp: true,
        machine: Some("mps2-an500"),
        cpu: "Cortex-M7",
        flash_origin: 0,
        flash: 4 << 20,
        ram_origin: 0x2000_0000,
        ram: 4 << 20,
        tick_ns: (40, 1),
        probe: None,
        boot2: None,
        note: "QEMU mps2-an500 (Cortex-M7): the AN386's memory map",
    },
    Board {
        name: "mps2-an505",
        target: "thumbv8m.main-none-eabihf",
        feature: "qemu-mps2-an505",
        dsp: true,
        machine: Some("mps2-an505"),
        cpu: "Cortex-M33",
        // The core starts in the Secure state, its vector table at 0x1000_0000 (INITSVTOR):
        // SSRAM1 through its Secure alias as code memory, SSRAM2 and 3 (contiguous) through
        // theirs as data memory. The MPCs in front of them reset to all-Secure.
        flash_origin: 0x1000_0000,
        flash: 4 << 20,
        ram_origin: 0x3800_0000,
        ram: 4 << 20,
        // The AN505's 20 MHz system clock.
        tick_ns: (50, 1),
        probe: None,
        boot2: None,
        note: "QEMU mps2-an505 (Cortex-M33, Secure state): SSRAM1 as code memory, SSRAM2/3 as data memory",
    },
    Board {
        name: "nrf52840dk",
        target: "thumbv7em-none-eabihf",
        feature: "nrf52840dk",
        dsp: true,
        machine: None,
        cpu: "nRF52840, Cortex-M4F",
        flash_origin: 0,
        flash: 1 << 20,
        ram_origin: 0x2000_0000,
        ram: 256 << 10,
        tick_ns: (1, 1),
        probe: Some("nRF52840_xxAA"),
        boot2: None,
        note: "nRF52840-DK (nRF52840, Cortex-M4F), no SoftDevice: 1 MiB flash, 256 KiB RAM",
    },
    Board {
        name: "rp2040",
        target: "thumbv6m-none-eabi",
        feature: "rp2040",
        dsp: false,
        machine: None,
        cpu: "RP2040, Cortex-M0+",
        // 2 MiB of QSPI flash less the 256-byte second-stage bootloader in front.
        flash_origin: 0x1000_0100,
        flash: (2 << 20) - 256,
        // SRAM0-3, striped; the 4 KiB SRAM4/5 banks are left alone.
        ram_origin: 0x2000_0000,
        ram: 256 << 10,
        tick_ns: (1, 1),
        probe: Some("RP2040"),
        boot2: Some((0x1000_0000, 256)),
        note: "Raspberry Pi Pico (RP2040, Cortex-M0+): 2 MiB of QSPI flash, the first 256 bytes \
               the second-stage bootloader; 256 KiB of striped SRAM",
    },
];

/// The board named `name`.
pub fn board_named(name: &str) -> Option<Board> {
    BOARDS.iter().copied().find(|b| b.name == name)
}

/// The linker's memory.x for `b` (cortex-m-rt's link.x includes it).
pub fn memory_x(b: &Board) -> String {
    let mut s = format!("/* {}. Written by build.rs from boards/boards.rs. */\nMEMORY\n{{\n", b.note);
    if let Some((origin, len)) = b.boot2 {
        s += &format!("  BOOT2 : ORIGIN = {origin:#010x}, LENGTH = {len:#x}\n");
    }
    s += &format!(
        "  FLASH : ORIGIN = {:#010x}, LENGTH = {:#x}\n  RAM   : ORIGIN = {:#010x}, LENGTH = {:#x}\n}}\n",
        b.flash_origin, b.flash, b.ram_origin, b.ram
    );
    if b.boot2.is_some() {
        s += "\nSECTIONS {\n  /* The boot ROM loads these bytes first. */\n  .boot2 ORIGIN(BOOT2) :\n  {\n    KEEP(*(.boot2));\n  } > BOOT2\n} INSERT BEFORE .text;\n";
    }
    s
}
