//! Milliseconds per op for the `conv` preset's layers at batch 128, candle's own ops beside
//! the trainer's fused ones, forward and forward + backward, in one run: the measurement the
//! fused ops were written from. Prints a Markdown table.
//!
//! `cargo run --release -p tinyvae-trainer --example bench_ops [THREADS] [REPEATS]`
//! (`cargo xtask bench-ops` writes it to results/train-ops.md).

use std::time::Instant;

use anyhow::Result;
use candle_core::{Device, Tensor, Var};
use tinyvae_trainer::ops::conv::{conv2d, conv_transpose2d, ConvGeometry};
use tinyvae_trainer::ops::linear::linear;
use tinyvae_trainer::rng::Rng;

const BATCH: usize = 128;

fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut v = vec![0f32; shape.iter().product()];
    Rng::new(seed).fill_normal(&mut v);
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// The best of `repeats` timings of `f`, in milliseconds (the first run is a warm-up).
fn best(repeats: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut t = f64::INFINITY;
    for _ in 0..repeats {
        let start = Instant::now();
        f()?;
        t = t.min(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(t)
}

/// Forward, and forward + backward of `sum(y * r)` with respect to every input.
fn measure(
    repeats: usize,
    inputs: &[Tensor],
    op: impl Fn(&[Tensor]) -> Result<Tensor>,
) -> Result<(f64, f64)> {
    let vars: Vec<Var> = inputs
        .iter()
        .map(|t| Var::from_tensor(t).unwrap())
        .collect();
    let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
    let y = op(&ts)?;
    let r = random(y.dims(), 9);
    let fwd = best(repeats, || {
        op(inputs)?;
        Ok(())
    })?;
    let both = best(repeats, || {
        let y = op(&ts)?;
        (&y * &r)?.sum_all()?.backward()?;
        Ok(())
    })?;
    Ok((fwd, both))
}

fn nchw(t: &Tensor) -> Result<Tensor> {
    Ok(t.permute((0, 3, 1, 2))?.contiguous()?)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let threads: Option<usize> = args.first().and_then(|s| s.parse().ok());
    let repeats = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    // Both sides at their defaults: candle's element-wise pool stays on (the trainer turns
    // it off), rayon and gemm get `threads`.
    if let Some(t) = threads {
        std::env::set_var("RAYON_NUM_THREADS", format!("{t}"));
    }
    tinyvae_trainer::ops::keep_freed_memory();
    let g1 = ConvGeometry {
        in_h: 28,
        in_w: 28,
        in_c: 1,
        out_c: 32,
        kernel: 4,
        stride: 2,
        padding: 1,
    };
    let g2 = ConvGeometry {
        in_h: 14,
        in_w: 14,
        in_c: 32,
        out_c: 64,
        kernel: 4,
        stride: 2,
        padding: 1,
    };
    println!(
        "| op (batch {BATCH}) | candle forward ms | fused forward ms | candle fwd+bwd ms | fused fwd+bwd ms | fwd+bwd speed-up |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |name: &str, c: (f64, f64), f: (f64, f64)| {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1}x |",
            c.0,
            f.0,
            c.1,
            f.1,
            c.1 / f.1
        );
    };
    for (name, g) in [("conv2d 1->32, 28x28", g1), ("conv2d 32->64, 14x14", g2)] {
        // Candle's layout: NCHW input, (out, in, k, k) weights; the data are the same.
        let x = random(&[BATCH, g.in_h, g.in_w, g.in_c], 1);
        let w = random(&[g.out_c, g.kernel, g.kernel, g.in_c], 2);
        let b = random(&[g.out_c], 3);
        let theirs = measure(repeats, &[nchw(&x)?, nchw(&w)?, b.clone()], |t| {
            let y = t[0].conv2d(&t[1], g.padding, g.stride, 1, 1)?;
            Ok(y.broadcast_add(&t[2].reshape((1, g.out_c, 1, 1))?)?)
        })?;
        let ours = measure(repeats, &[x, w, b], |t| Ok(conv2d(&t[0], &t[1], &t[2], g)?))?;
        row(name, theirs, ours);
    }
    for (name, g) in [
        ("conv_transpose2d 64->32, 7x7", g2),
        ("conv_transpose2d 32->1, 14x14", g1),
    ] {
        let x = random(&[BATCH, g.out_h(), g.out_w(), g.out_c], 4);
        let w = random(&[g.out_c, g.kernel, g.kernel, g.in_c], 5);
        let b = random(&[g.in_c], 6);
        let theirs = measure(repeats, &[nchw(&x)?, nchw(&w)?, b.clone()], |t| {
            let y = t[0].conv_transpose2d(&t[1], g.padding, 0, g.stride, 1)?;
            Ok(y.broadcast_add(&t[2].reshape((1, g.in_c, 1, 1))?)?)
        })?;
        let ours = measure(repeats, &[x, w, b], |t| {
            Ok(conv_transpose2d(&t[0], &t[1], &t[2], g)?)
        })?;
        row(name, theirs, ours);
    }
    for (name, inp, out) in [
        ("dense 3136->40 (heads)", 3136, 40),
        ("dense 20->3136", 20, 3136),
        ("dense 784->400", 784, 400),
    ] {
        let (x, w, b) = (
            random(&[BATCH, inp], 7),
            random(&[out, inp], 8),
            random(&[out], 9),
        );
        let theirs = measure(repeats, &[x.clone(), w.clone(), b.clone()], |t| {
            Ok(t[0].matmul(&t[1].t()?)?.broadcast_add(&t[2])?)
        })?;
        let ours = measure(repeats, &[x, w, b], |t| Ok(linear(&t[0], &t[1], &t[2])?))?;
        row(name, theirs, ours);
    }
    Ok(())
}
