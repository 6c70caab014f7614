//! The Adam update of one parameter, in place, in one pass.

use std::sync::Mutex;

use candle_core::{CpuStorage, InplaceOp2, Layout, Result};

use super::f32_slice;

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
