//! Fused CPU kernels as candle custom ops, where the plain graph spends its time on many small
//! allocating element-wise passes: the binary cross-entropy from logits with its gradient, and
//! the Adam update done in place.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, InplaceOp2, Layout, Result, Shape, Tensor};

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let (start, end) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{what}: not contiguous")))?;
    match s {
        CpuStorage::F32(v) => Ok(&v[start..end]),
        _ => Err(candle_core::Error::Msg(format!("{what}: not f32"))),
    }
}

/// log(1 + exp(-|l|)), accurate for every logit.
#[inline]
fn softplus_neg_abs(l: f32) -> f32 {
    (-l.abs()).exp().ln_1p()
}

/// Binary cross-entropy from logits, summed over each row: for logits `l` and targets `x`
/// (both (batch, n)), `sum_j max(l, 0) - l x + log(1 + exp(-|l|))`, shape (batch).
pub struct BceWithLogits;

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
        if l2.shape().dims2()? != (b, n) {
            return Err(candle_core::Error::Msg("bce: shapes differ".into()));
        }
        let (l, x) = (f32_slice(s1, l1, "logits")?, f32_slice(s2, l2, "targets")?);
        let out: Vec<f32> = l
            .chunks_exact(n)
            .zip(x.chunks_exact(n))
            .map(|(lr, xr)| {
                lr.iter()
                    .zip(xr)
                    .map(|(&l, &x)| f64::from(l.max(0.0) - l * x + softplus_neg_abs(l)))
                    .sum::<f64>() as f32
            })
            .collect();
        Ok((CpuStorage::F32(out), Shape::from(b)))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        x: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // d/dl = sigmoid(l) - x, scaled by each row's incoming gradient. The targets are data.
        let g = logits.apply_op3_no_bwd(x, &grad.contiguous()?, &BceGrad)?;
        Ok((Some(g), None))
    }
}

struct BceGrad;

impl CustomOp3 for BceGrad {
    fn name(&self) -> &'static str {
        "bce-with-logits-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, n) = l1.shape().dims2()?;
        let (l, x, g) = (
            f32_slice(s1, l1, "logits")?,
            f32_slice(s2, l2, "targets")?,
            f32_slice(s3, l3, "grad")?,
        );
        let mut out = Vec::with_capacity(l.len());
        for ((lr, xr), &gr) in l.chunks_exact(n).zip(x.chunks_exact(n)).zip(g) {
            out.extend(
                lr.iter()
                    .zip(xr)
                    .map(|(&l, &x)| gr * (1.0 / (1.0 + (-l).exp()) - x)),
            );
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Summed binary cross-entropy per example, from logits.
pub fn bce_with_logits(logits: &Tensor, x: &Tensor) -> Result<Tensor> {
    logits
        .contiguous()?
        .apply_op2(&x.contiguous()?, BceWithLogits)
}

/// One parameter's Adam moments.
pub struct Moments {
    /// First moment.
    pub m: Vec<f32>,
    /// Second moment.
    pub v: Vec<f32>,
}

/// The Adam update of one parameter, in place, in one pass: with bias corrections `c1`, `c2`,
/// `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`, `w -= lr / c1 * m / (sqrt(v / c2) + eps)`.
pub struct AdamStep<'a> {
    /// The parameter's moments.
    pub moments: &'a Mutex<Moments>,
    /// Learning rate.
    pub lr: f32,
    /// beta1, beta2, epsilon.
    pub betas: (f32, f32, f32),
    /// 1 - beta1^t and 1 - beta2^t.
    pub corrections: (f32, f32),
}

impl InplaceOp2 for AdamStep<'_> {
    fn name(&self) -> &'static str {
        "adam-step"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let g = f32_slice(s2, l2, "gradient")?;
        let (start, end) = l1
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("parameter: not contiguous".into()))?;
        let CpuStorage::F32(w) = s1 else {
            return Err(candle_core::Error::Msg("parameter: not f32".into()));
        };
        let w = &mut w[start..end];
        let mut guard = self
            .moments
            .lock()
            .map_err(|_| candle_core::Error::Msg("adam state poisoned".into()))?;
        let Moments { m, v } = &mut *guard;
        if g.len() != w.len() || m.len() != w.len() || v.len() != w.len() {
            return Err(candle_core::Error::Msg("adam: length mismatch".into()));
        }
        let (b1, b2, eps) = self.betas;
        let (c1, c2) = self.corrections;
        let step = self.lr / c1;
        let inv_c2 = 1.0 / c2;
        for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *w -= step * *m / ((*v * inv_c2).sqrt() + eps);
        }
        Ok(())
    }
}
