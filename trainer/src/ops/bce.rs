//! The binary cross-entropy from logits, summed over each row, in one pass forward that also
//! keeps the gradient `sigmoid(l) - x` for the backward pass. `exp` and `log1p` are computed
//! with branch-free polynomials the compiler vectorises (within 2 ulp of libm here, checked
//! in the tests), where libm's scalar calls took most of the op's time.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Error, Layout, Result, Shape, Tensor};

use super::f32_slice;

/// `exp(x)` for `x <= 0` (below -87 it returns `exp(-87)`, 1.6e-38, not 0): Cody-Waite range
/// reduction by ln 2 and a degree-7 polynomial on |r| <= ln 2 / 2.
#[inline(always)]
pub fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = x.max(-87.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    // Taylor coefficients 1/k! up to r^7: truncation error below 2e-8 relative.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let scale = f32::from_bits((((n as i32) + 127) as u32) << 23);
    p * scale
}

/// `ln(1 + e)` for `e` in [0, 1]: `2 atanh(s)` with `s = e / (2 + e)` in [0, 1/3], its series
/// to s^13 (truncation error below 1e-8).
#[inline(always)]
pub fn ln_1p_unit(e: f32) -> f32 {
    let s = e / (2.0 + e);
    let s2 = s * s;
    let series = 1.0
        + s2 * (1.0 / 3.0
            + s2 * (1.0 / 5.0
                + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0 + s2 / 13.0)))));
    2.0 * s * series
}

/// Binary cross-entropy from logits, summed over each row: for logits `l` and targets `x`
/// (both (batch, n)), `sum_j max(l, 0) - l x + log(1 + exp(-|l|))`, shape (batch). The
/// forward pass keeps `sigmoid(l) - x` for the backward pass.
#[derive(Default)]
pub struct BceWithLogits {
    gradient: Mutex<Option<Vec<f32>>>,
}

/// Per element: (loss term, d loss / d l).
#[inline(always)]
fn term(l: f32, x: f32) -> (f32, f32) {
    let e = exp_nonpositive(-l.abs());
    let inv = 1.0 / (1.0 + e);
    let sigmoid = if l >= 0.0 { inv } else { e * inv };
    (l.max(0.0) - l * x + ln_1p_unit(e), sigmoid - x)
}

impl CustomOp2 for BceWithLogits {
    fn name(&self) -> &'static str {
        "bce-with-logits"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, n) = l1.shape().dims2()?;
        if l2.shape().dims2()? != (b, n) || n == 0 {
            return Err(Error::Msg(format!(
                "bce: logits {:?} and targets {:?}",
                l1.shape(),
                l2.shape()
            )));
        }
        let (l, x) = (f32_slice(s1, l1, "logits")?, f32_slice(s2, l2, "targets")?);
        let mut grad = vec![0f32; l.len()];
        let mut terms = vec![0f32; n];
        let mut out = Vec::with_capacity(b);
        for ((lr, xr), gr) in l
            .chunks_exact(n)
            .zip(x.chunks_exact(n))
            .zip(grad.chunks_exact_mut(n))
        {
            for (((&l, &x), g), t) in lr.iter().zip(xr).zip(gr.iter_mut()).zip(terms.iter_mut()) {
                (*t, *g) = term(l, x);
            }
            out.push(terms.iter().map(|&t| f64::from(t)).sum::<f64>() as f32);
        }
        *self
            .gradient
            .lock()
            .map_err(|_| Error::Msg("bce state poisoned".into()))? = Some(grad);
        Ok((CpuStorage::F32(out), Shape::from(b)))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        _x: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // d/dl = (sigmoid(l) - x) times each row's incoming gradient. The targets are data.
        let kept = self
            .gradient
            .lock()
            .map_err(|_| Error::Msg("bce state poisoned".into()))?
            .take()
            .ok_or_else(|| Error::Msg("bce: backward without forward".into()))?;
        let g = grad
            .contiguous()?
            .apply_op1_no_bwd(&ScaleRows(Mutex::new(Some(kept)), logits.shape().clone()))?;
        Ok((Some(g), None))
    }
}

/// Multiplies each row of a kept (batch, n) gradient by one value per row.
struct ScaleRows(Mutex<Option<Vec<f32>>>, Shape);

impl CustomOp1 for ScaleRows {
    fn name(&self) -> &'static str {
        "bce-with-logits-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let per_row = f32_slice(s, l, "row gradient")?;
        let (b, n) = self.1.dims2()?;
        let mut g = self
            .0
            .lock()
            .map_err(|_| Error::Msg("bce state poisoned".into()))?
            .take()
            .ok_or_else(|| Error::Msg("bce: gradient used twice".into()))?;
        if per_row.len() != b || g.len() != b * n {
            return Err(Error::Msg("bce: gradient shapes differ".into()));
        }
        for (row, &k) in g.chunks_exact_mut(n).zip(per_row) {
            for v in row {
                *v *= k;
            }
        }
        Ok((CpuStorage::F32(g), self.1.clone()))
    }
}

/// Summed binary cross-entropy per example, from logits.
pub fn bce_with_logits(logits: &Tensor, x: &Tensor) -> Result<Tensor> {
    logits
        .contiguous()?
        .apply_op2(&x.contiguous()?, BceWithLogits::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polynomials_match_libm() {
        let mut worst = (0f32, 0f32);
        for i in 0..=200_000 {
            let x = -87.0 * i as f32 / 200_000.0;
            let (got, want) = (exp_nonpositive(x), x.exp());
            let rel = ((got - want) / want).abs();
            worst.0 = worst.0.max(rel);
            let e = i as f32 / 200_000.0;
            let (got, want) = (ln_1p_unit(e), e.ln_1p());
            if want > 0.0 {
                worst.1 = worst.1.max(((got - want) / want).abs());
            }
        }
        // 2 ulp of f32 is 2.4e-7 relative.
        assert!(worst.0 < 2.4e-7 && worst.1 < 2.4e-7, "{worst:?}");
    }
}
