// Every board, described once: `firmware/build.rs` writes the selected board's memory.x from
// it and checks its feature, and xtask reads its target, QEMU machine, sizes and probe-rs
// chip from it (both `include!` this file). Adding a board: an entry here (its role decides
// what `cargo xtask test` runs on it) and its feature in firmware/Cargo.toml (xtask's tests
// check that every board here has one).

/// How a board's log (defmt frames) reaches the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Log {
    /// Semihosting writes, which QEMU puts on its standard output (emulated boards).
    Semihosting,
    /// RTT, read by probe-rs through the debug probe (real boards).
    Rtt,
    /// A UART at this baud rate (8N1): QEMU's `-serial` under emulation, the debug probe's
    /// virtual COM port on the board, the same frames both ways.
    Uart(u32),
}

/// What a board is for, which decides what `cargo xtask test` runs on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Emulated by QEMU, large enough for every model: the self-test, the kernel checks and
    /// the dense and conv models. The first such board is every command's default.
    Emulated,
    /// Emulated, too small for the default model: the self-test and a decoder-only model.
    EmulatedSmall,
    /// A real board that QEMU also emulates: the same image run under QEMU and flashed.
    EmulatedKit,
    /// A real board: built with its HAL and size-checked; flashed by `cargo xtask flash`.
    Real,
}

/// A board the firmware builds for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Board {
    /// Name used on the command line and in results.
    pub name: &'static str,
    /// What it is for (which tests run on it).
    pub role: Role,
    /// Another board whose image this one runs unchanged (same target and flags; only the
    /// memory map differs), so that its lints are that board's.
    pub same_code_as: Option<&'static str>,
    /// Samples the firmware keeps for a display on this board (their RAM is counted).
    pub display_samples: u64,
    /// Rust target.
    pub target: &'static str,
    /// The Cargo feature that selects it (firmware/Cargo.toml).
    pub feature: &'static str,
    /// The core has the DSP extension and the engine's DSP kernel runs on it. The engine decides
    /// that from the target and its flags (model-format/src/dsp_rule.rs, firmware/.cargo/config.toml);
    /// xtask's tests hold this field to the same rule.
    pub dsp: bool,
    /// QEMU machine, for emulated boards.
    pub machine: Option<&'static str>,
    /// How the log reaches the host (the board's feature selects the same transport).
    pub log: Log,
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
    /// instructions with it). Unused on real boards, which count core cycles, and on a board
    /// whose image measures it at boot (feature `auto-counter`).
    pub tick_ns: (u64, u64),
    /// QEMU's `-icount shift` for the board: every instruction lasts 2^shift ns of virtual
    /// time, which must span more than two of the counter's ticks for exact counts (src/counter.rs).
    pub icount_shift: u32,
    /// probe-rs's name for the chip, for real boards.
    pub probe: Option<&'static str>,
    /// A second-stage bootloader's region (origin, bytes) in front of the program.
    pub boot2: Option<(u64, u64)>,
    /// The boot ROM looks for an image definition block in the first 4 KiB of flash (RP2350):
    /// memory.x places the `.start_block` section right after the vector table.
    pub image_def: bool,
    /// What the memory map is, for memory.x's comment.
    pub note: &'static str,
}

/// All boards: the emulated ones first.
pub const BOARDS: [Board; 10] = [
    Board {
        name: "mps2-an386",
        role: Role::Emulated,
        same_code_as: None,
        display_samples: 0,
        target: "thumbv7em-none-eabihf",
        feature: "qemu-mps2-an386",
        dsp: true,
        machine: Some("mps2-an386"),
        log: Log::Semihosting,
        cpu: "Cortex-M4F",
        flash_origin: 0,
        flash: 4 << 20,
        ram_origin: 0x2000_0000,
        ram: 4 << 20,
        tick_ns: (40, 1),
        icount_shift: 7,
        probe: None,
        boot2: None,
        image_def: false,
        note: "QEMU mps2-an386 (Cortex-M4F): ZBT SSRAM1 as code memory, SSRAM2/3 as data memory",
    },
    Board {
        name: "mps2-an385",
        role: Role::Emulated,
        same_code_as: None,
        display_samples: 0,
        target: "thumbv7m-none-eabi",
        feature: "qemu-mps2-an385",
        dsp: false,
        machine: Some("mps2-an385"),
        log: Log::Semihosting,
        cpu: "Cortex-M3",
        flash_origin: 0,
        flash: 4 << 20,
        ram_origin: 0x2000_0000,
        ram: 4 << 20,
        tick_ns: (40, 1),
        icount_shift: 7,
        probe: None,
        boot2: None,
        image_def: false,
        note: "QEMU mps2-an385 (Cortex-M3): the AN386's memory map",
    },
    Board {
        name: "microbit",
        role: Role::EmulatedSmall,
        same_code_as: None,
        display_samples: 0,
        target: "thumbv6m-none-eabi",
        feature: "qemu-microbit",
        dsp: false,
        machine: Some("microbit"),
        log: Log::Semihosting,
        cpu: "Cortex-M0",
        flash_origin: 0,
        flash: 256 << 10,
        ram_origin: 0x2000_0000,
        ram: 16 << 10,
        tick_ns: (125, 2),
        icount_shift: 7,
        probe: None,
        boot2: None,
        image_def: false,
        note: "QEMU microbit (nRF51822, Cortex-M0): 256 KiB flash, 16 KiB RAM",
    },
    Board {
        name: "mps2-an500",
        role: Role::Emulated,
        same_code_as: Some("mps2-an386"),
        display_samples: 0,
        target: "thumbv7em-none-eabihf",
        feature: "qemu-mps2-an500",
        dsp: true,
        machine: Some("mps2-an500"),
        log: Log::Semihosting,
        cpu: "Cortex-M7",
        flash_origin: 0,
        flash: 4 << 20,
        ram_origin: 0x2000_0000,
        ram: 4 << 20,
        tick_ns: (40, 1),
        icount_shift: 7,
        probe: None,
        boot2: None,
        image_def: false,
        note: "QEMU mps2-an500 (Cortex-M7): the AN386's memory map",
    },
    Board {
        name: "mps2-an505",
        role: Role::Emulated,
        same_code_as: None,
        display_samples: 0,
        target: "thumbv8m.main-none-eabihf",
        feature: "qemu-mps2-an505",
        dsp: true,
        machine: Some("mps2-an505"),
        log: Log::Semihosting,
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
        icount_shift: 7,
        probe: None,
        boot2: None,
        image_def: false,
        note: "QEMU mps2-an505 (Cortex-M33, Secure state): SSRAM1 as code memory, SSRAM2/3 as data memory",
    },
    Board {
        name: "mps2-an385-m0",
        role: Role::Emulated,
        same_code_as: None,
        display_samples: 0,
        target: "thumbv6m-none-eabi",
        feature: "qemu-mps2-an385-m0",
        dsp: false,
        machine: Some("mps2-an385"),
        log: Log::Semihosting,
        cpu: "Cortex-M0 code on a Cortex-M3",
        // The Cortex-M0 build (ARMv6-M, the micro:bit's kernels) with the AN385's 4 MiB: every
        // model runs it, encoder included. ARMv6-M is a subset of ARMv7-M, so the M3 runs the
        // same instructions an M0 would, and -icount counts them: instructions, not M0 cycles.
        flash_origin: 0,
        flash: 4 << 20,
        ram_origin: 0x2000_0000,
        ram: 4 << 20,
        tick_ns: (40, 1),
        icount_shift: 7,
        probe: None,
        boot2: None,
        image_def: false,
        note: "QEMU mps2-an385 running the Cortex-M0 build (ARMv6-M): the AN386's memory map",
    },
    Board {
        name: "b-l475e-iot01a",
        role: Role::EmulatedKit,
        same_code_as: None,
        display_samples: 0,
        target: "thumbv7em-none-eabihf",
        feature: "b-l475e-iot01a",
        dsp: true,
        // One image for both: QEMU's model of the kit, and the kit through its ST-LINK.
        machine: Some("b-l475e-iot01a"),
        log: Log::Uart(115_200),
        cpu: "STM32L475VG, Cortex-M4F",
        flash_origin: 0x0800_0000,
        flash: 1 << 20,
        // SRAM1; the 32 KiB SRAM2 at 0x1000_0000 is left alone.
        ram_origin: 0x2000_0000,
        ram: 96 << 10,
        // Measured at boot instead (feature `auto-counter`): under QEMU, SysTick runs at 10 MHz
        // here, not at the 80 MHz core clock src/board.rs sets; hence 256 ns per instruction
        // (2.56 ticks; 128 ns would be 1.28, and counts could be one off).
        tick_ns: (100, 1),
        icount_shift: 8,
        probe: Some("STM32L475VGTx"),
        boot2: None,
        image_def: false,
        note: "B-L475E-IOT01A Discovery kit (STM32L475VG, Cortex-M4F): 1 MiB flash, 96 KiB SRAM1",
    },
    Board {
        name: "nrf52840dk",
        role: Role::Real,
        same_code_as: None,
        display_samples: 2,
        target: "thumbv7em-none-eabihf",
        feature: "nrf52840dk",
        dsp: true,
        machine: None,
        log: Log::Rtt,
        cpu: "nRF52840, Cortex-M4F",
        flash_origin: 0,
        flash: 1 << 20,
        ram_origin: 0x2000_0000,
        ram: 256 << 10,
        tick_ns: (1, 1),
        icount_shift: 7,
        probe: Some("nRF52840_xxAA"),
        boot2: None,
        image_def: false,
        note: "nRF52840-DK (nRF52840, Cortex-M4F), no SoftDevice: 1 MiB flash, 256 KiB RAM",
    },
    Board {
        name: "rp2040",
        role: Role::Real,
        same_code_as: None,
        display_samples: 0,
        target: "thumbv6m-none-eabi",
        feature: "rp2040",
        dsp: false,
        machine: None,
        log: Log::Rtt,
        cpu: "RP2040, Cortex-M0+",
        // 2 MiB of QSPI flash less the 256-byte second-stage bootloader in front.
        flash_origin: 0x1000_0100,
        flash: (2 << 20) - 256,
        // SRAM0-3, striped; the 4 KiB SRAM4/5 banks are left alone.
        ram_origin: 0x2000_0000,
        ram: 256 << 10,
        tick_ns: (1, 1),
        icount_shift: 7,
        probe: Some("RP2040"),
        boot2: Some((0x1000_0000, 256)),
        image_def: false,
        note: "Raspberry Pi Pico (RP2040, Cortex-M0+): 2 MiB of QSPI flash, the first 256 bytes \
               the second-stage bootloader; 256 KiB of striped SRAM",
    },
    Board {
        name: "rp2350",
        role: Role::Real,
        same_code_as: None,
        display_samples: 0,
        target: "thumbv8m.main-none-eabihf",
        feature: "rp2350",
        dsp: true,
        machine: None,
        log: Log::Rtt,
        cpu: "RP2350, Cortex-M33",
        // The Pico 2's 4 MiB of QSPI flash; its image definition block follows the vector
        // table, in the first 4 KiB where the boot ROM looks for it.
        flash_origin: 0x1000_0000,
        flash: 4 << 20,
        // SRAM0-7, striped; the 4 KiB SRAM8/9 banks are left alone.
        ram_origin: 0x2000_0000,
        ram: 512 << 10,
        tick_ns: (1, 1),
        icount_shift: 7,
        probe: Some("RP235x"),
        boot2: None,
        image_def: true,
        note: "Raspberry Pi Pico 2 (RP2350, Cortex-M33): 4 MiB of QSPI flash, the boot ROM's \
               image definition after the vector table; 512 KiB of striped SRAM",
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
    if b.image_def {
        s += "\nSECTIONS {\n  /* The boot ROM finds the image definition in the first 4 KiB. */\n  \
              .start_block : ALIGN(4)\n  {\n    KEEP(*(.start_block));\n  } > FLASH\n} \
              INSERT AFTER .vector_table;\n\n/* The code starts after it. */\n\
              _stext = ADDR(.start_block) + SIZEOF(.start_block);\n";
    }
    if b.boot2.is_some() {
        s += "\nSECTIONS {\n  /* The boot ROM loads these bytes first. */\n  .boot2 ORIGIN(BOOT2) :\n  {\n    KEEP(*(.boot2));\n  } > BOOT2\n} INSERT BEFORE .text;\n";
    }
    s
}
