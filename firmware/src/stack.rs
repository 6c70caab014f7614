//! RAM figures: static RAM from the linker's symbols, and the peak stack measured by painting
//! the free RAM between the end of the static data and the stack pointer at boot, then finding
//! the deepest word that changed.

const PAINT: u32 = 0xCAFE_F00D;

extern "C" {
    static __sdata: u32;
    static __sheap: u32;
    static _stack_start: u32;
}

fn addr(p: *const u32) -> usize {
    p as usize
}

fn bounds() -> (usize, usize, usize) {
    // Only the addresses of these linker symbols are taken, never their contents.
    (
        addr(&raw const __sdata),
        addr(&raw const __sheap),
        addr(&raw const _stack_start),
    )
}

/// Paints the unused RAM below the current stack pointer. Call first thing in `main`.
#[inline(never)]
pub fn paint() {
    let (_, heap, _) = bounds();
    let sp = cortex_m::register::msp::read() as usize;
    let mut p = (heap + 3) & !3;
    // Leave a margin below the current frame.
    while p + 256 < sp {
        // SAFETY: [heap, sp - 256) is RAM that nothing uses yet: above the static data, below
        // the live stack. Volatile, so the writes are not elided.
        unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
        p += 4;
    }
}

/// The deepest the stack has reached since [`paint`], in bytes.
pub fn peak() -> u32 {
    let (_, heap, top) = bounds();
    let mut p = (heap + 3) & !3;
    // SAFETY: reads of RAM between the static data and the stack top.
    while p < top && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
        p += 4;
    }
    (top - p) as u32
}

/// Bytes of static data (.data, .bss, .uninit).
pub fn static_ram() -> u32 {
    let (data, heap, _) = bounds();
    (heap - data) as u32
}
