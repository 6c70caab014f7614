//! The optimizer: Adam with PyTorch's defaults, its moments kept per parameter.

use std::sync::Mutex;

use anyhow::{bail, Result};
use candle_core::{Tensor, Var};

use crate::ops::adam::{AdamStep, Moments};

/// Adam (Kingma and Ba) without weight decay, as PyTorch computes it, updating each
/// parameter in place in one fused pass; its moments are kept for checkpoints.
pub struct Adam {
    pub(crate) vars: Vec<(String, Var)>,
    moments: Vec<Mutex<Moments>>,
    /// Steps taken.
    pub step: u64,
    lr: f64,
}

pub(crate) const BETA1: f64 = 0.9;

pub(crate) const BETA2: f64 = 0.999;

pub(crate) const ADAM_EPS: f64 = 1e-8;

impl Adam {
    /// An optimizer over `vars` with zero moments.
    pub fn new(vars: Vec<(String, Var)>, lr: f64) -> Result<Adam> {
        let moments = vars
            .iter()
            .map(|(_, v)| {
                let n = v.elem_count();
                Mutex::new(Moments {
                    m: vec![0.0; n],
                    v: vec![0.0; n],
                })
            })
            .collect();
        Ok(Adam {
            vars,
            moments,
            step: 0,
            lr,
        })
    }

    /// Sets the learning rate of the steps to come.
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// One update from the gradients of `loss`.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step_with(&[grads])
    }

    /// One update from the gradients of several losses (the shards of one batch), summed in
    /// the order given.
    pub fn step_with(&mut self, shards: &[candle_core::backprop::GradStore]) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let corrections = ((1.0 - BETA1.powi(t)) as f32, (1.0 - BETA2.powi(t)) as f32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let mut parts = shards.iter().filter_map(|g| g.get(var.as_tensor()));
            let Some(first) = parts.next() else {
                continue;
            };
            let g = parts.try_fold(first.clone(), |sum, g| sum + g)?;
            var.as_tensor().inplace_op2(
                &g.contiguous()?,
                &AdamStep {
                    moments: &self.moments[i],
                    lr: self.lr as f32,
                    betas: (BETA1 as f32, BETA2 as f32, ADAM_EPS as f32),
                    corrections,
                },
            )?;
        }
        Ok(())
    }

    /// The moments of parameter `i` as (m, v) tensors of its shape.
    pub(crate) fn moment_tensors(&self, i: usize) -> Result<(Tensor, Tensor)> {
        let var = &self.vars[i].1;
        let g = self.moments[i]
            .lock()
            .map_err(|_| anyhow::anyhow!("adam state poisoned"))?;
        Ok((
            Tensor::from_vec(g.m.clone(), var.shape(), var.device())?,
            Tensor::from_vec(g.v.clone(), var.shape(), var.device())?,
        ))
    }

    /// Restores the moments of parameter `i`.
    pub(crate) fn set_moments(&mut self, i: usize, m: &Tensor, v: &Tensor) -> Result<()> {
        let n = self.vars[i].1.elem_count();
        let (m, v) = (
            m.flatten_all()?.to_vec1::<f32>()?,
            v.flatten_all()?.to_vec1::<f32>()?,
        );
        if m.len() != n || v.len() != n {
            bail!(
                "checkpoint: optimizer state of {} has the wrong size",
                self.vars[i].0
            );
        }
        self.moments[i] = Mutex::new(Moments { m, v });
        Ok(())
    }
}
