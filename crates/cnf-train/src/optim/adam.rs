//! Adam (Kingma & Ba, 2015) with bias correction and optional decoupled
//! weight decay (AdamW, Loshchilov & Hutter): the decay `p -= lr * wd * p` is
//! applied to the parameters directly, not added to the gradient, so it is
//! not rescaled by Adam's per-parameter step size. Matches `torch.optim.AdamW`
//! (and `torch.optim.Adam` when `weight_decay == 0`).

use cnf_ode::cast;
use num_traits::Float;
use serde::{Deserialize, Serialize};

use crate::error::OptimError;

/// Hyper-parameters; defaults are PyTorch's (`lr` 1e-3, betas (0.9, 0.999),
/// eps 1e-8, no weight decay).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Learning rate: the step size, before bias correction.
    pub lr: f64,
    /// Decay rate of the running mean of the gradients (first moment), in `[0, 1)`.
    pub beta1: f64,
    /// Decay rate of the running mean of the squared gradients (second moment), in `[0, 1)`.
    pub beta2: f64,
    /// Added to the square root of the second moment before dividing by it, to bound the step
    /// where gradients are tiny.
    pub eps: f64,
    /// Decoupled weight decay per unit learning rate: each step also does
    /// `p -= lr * weight_decay * p` (0 disables it).
    pub weight_decay: f64,
    /// Cosine annealing over this many steps: step `t` (from 1) uses the learning rate
    /// `lr * (1 + cos(pi * min(t - 1, n) / n)) / 2`, from `lr` down to 0 at step `n + 1`
    /// (PyTorch's `CosineAnnealingLR` with `eta_min = 0`). 0: a constant `lr`, as in states
    /// saved before schedules.
    #[serde(default)]
    pub cosine_steps: u64,
    /// Decay of the exponential moving average of the parameters (Polyak averaging), in
    /// `[0, 1)`; 0 keeps no average, as in states saved before it. Step `t` (from 1) does
    /// `a = b a + (1 - b) p` with `b = min(ema_decay, (1 + t) / (10 + t))`: the warm-up keeps
    /// the first steps from dragging the start along for thousands of steps.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ema_decay: f64,
}

pub(crate) fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            cosine_steps: 0,
            ema_decay: 0.0,
        }
    }
}

impl AdamConfig {
    /// Checks `lr > 0`, betas and `ema_decay` in `[0, 1)`, `eps > 0`, `weight_decay >= 0`.
    ///
    /// # Errors
    /// [`OptimError::BadSetting`] naming the first setting out of range or not finite.
    pub fn validate(&self) -> Result<(), OptimError> {
        let checks = [
            ("lr", self.lr, self.lr > 0.0, "must be positive"),
            (
                "beta1",
                self.beta1,
                (0.0..1.0).contains(&self.beta1),
                "must be in [0, 1)",
            ),
            (
                "beta2",
                self.beta2,
                (0.0..1.0).contains(&self.beta2),
                "must be in [0, 1)",
            ),
            ("eps", self.eps, self.eps > 0.0, "must be positive"),
            (
                "weight_decay",
                self.weight_decay,
                self.weight_decay >= 0.0,
                "must be non-negative",
            ),
            (
                "ema_decay",
                self.ema_decay,
                (0.0..1.0).contains(&self.ema_decay),
                "must be in [0, 1)",
            ),
        ];
        for (name, value, ok, why) in checks {
            if !(ok && value.is_finite()) {
                return Err(OptimError::BadSetting { name, value, why });
            }
        }
        Ok(())
    }
}

/// How a run's learning rate changes with the iterations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// The same rate throughout.
    #[default]
    Constant,
    /// Cosine annealing from the rate to 0 over the run's iterations
    /// ([`AdamConfig::cosine_steps`]).
    Cosine,
}

impl LrSchedule {
    /// [`AdamConfig::cosine_steps`] for a run of `iters` iterations.
    pub fn cosine_steps(self, iters: usize) -> u64 {
        match self {
            Self::Constant => 0,
            Self::Cosine => iters as u64,
        }
    }
    /// Whether the rate stays constant (config.json then leaves the schedule out).
    pub fn is_constant(&self) -> bool {
        *self == Self::Constant
    }
}

/// Adam state: first and second moment estimates, the step count and, with
/// [`AdamConfig::ema_decay`], the moving average of the parameters. Serialisable so that
/// training can resume exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adam<T> {
    /// Hyper-parameters; public so that a schedule can change them between steps (check them
    /// with [`AdamConfig::validate`] or use [`Self::set_lr`]).
    pub config: AdamConfig,
    m: Vec<T>,
    v: Vec<T>,
    step: u64,
    /// The other set of parameters when averaging ([`Adam::swap_average`]): the moving average
    /// while the caller holds the raw parameters, the raw ones while it holds the average.
    /// Empty when not averaging, or before the first step.
    #[serde(default = "Vec::new", skip_serializing_if = "Vec::is_empty")]
    average: Vec<T>,
}

impl<T: Float> Adam<T> {
    /// A fresh optimiser for `n_params` parameters.
    ///
    /// ```
    /// use cnf_train::optim::{Adam, AdamConfig};
    ///
    /// // Bias correction makes the first step -lr * g / (|g| + eps): about lr against the
    /// // gradient's sign, whatever its size.
    /// let config = AdamConfig { lr: 0.1, ..AdamConfig::default() };
    /// let mut adam = Adam::<f64>::new(2, config)?;
    /// let mut params = [1.0, -2.0];
    /// let grads = [1e-3, -50.0];
    /// adam.step(&mut params, &grads)?;
    /// for ((p, p0), g) in params.iter().zip([1.0, -2.0]).zip(grads) {
    ///     let exact = p0 - 0.1 * g / (g.abs() + 1e-8);
    ///     assert!((p - exact).abs() < 1e-12, "{p} vs {exact}");
    /// }
    /// assert_eq!(adam.step_count(), 1);
    /// # Ok::<(), cnf_train::OptimError>(())
    /// ```
    ///
    /// # Errors
    /// [`OptimError::BadSetting`] as [`AdamConfig::validate`].
    pub fn new(n_params: usize, config: AdamConfig) -> Result<Self, OptimError> {
        config.validate()?;
        Ok(Self {
            config,
            m: vec![T::zero(); n_params],
            v: vec![T::zero(); n_params],
            step: 0,
            average: Vec::new(),
        })
    }

    /// The learning rate of the next step (`lr`, or its cosine-annealed value).
    pub fn current_lr(&self) -> f64 {
        let c = &self.config;
        match c.cosine_steps {
            0 => c.lr,
            n => {
                let done = self.step.min(n) as f64 / n as f64;
                c.lr * 0.5 * (1.0 + (std::f64::consts::PI * done).cos())
            }
        }
    }

    /// Number of updates taken so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Number of parameters the optimiser holds moments for.
    pub fn n_params(&self) -> usize {
        self.m.len()
    }

    /// Exchanges `params` with the moving average of the parameters: a caller evaluates (and
    /// keeps) the averaged model between two calls, then trains on from the raw parameters.
    /// Does nothing when there is no average yet (no averaging, or no step taken).
    ///
    /// # Errors
    /// [`OptimError::Length`] if `params` does not have [`Adam::n_params`] entries.
    pub fn swap_average(&mut self, params: &mut [T]) -> Result<(), OptimError> {
        if self.average.is_empty() {
            return Ok(());
        }
        if params.len() != self.average.len() {
            return Err(OptimError::Length {
                expected: self.average.len(),
                params: params.len(),
                grads: params.len(),
            });
        }
        params.swap_with_slice(&mut self.average);
        Ok(())
    }

    /// Changes the learning rate (for schedules) and validates it.
    ///
    /// # Errors
    /// [`OptimError::BadSetting`] for a learning rate that is not finite and positive (the
    /// optimiser keeps the old one).
    pub fn set_lr(&mut self, lr: f64) -> Result<(), OptimError> {
        let config = AdamConfig { lr, ..self.config };
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// One update of `params` from `grads`:
    /// `p -= lr*wd*p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
    ///  p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)`.
    ///
    /// # Errors
    /// [`OptimError::Length`] if `params` or `grads` does not have [`Adam::n_params`] entries
    /// (nothing is updated).
    pub fn step(&mut self, params: &mut [T], grads: &[T]) -> Result<(), OptimError> {
        if params.len() != self.m.len() || grads.len() != self.m.len() {
            return Err(OptimError::Length {
                expected: self.m.len(),
                params: params.len(),
                grads: grads.len(),
            });
        }
        let lr = self.current_lr();
        self.step += 1;
        let c = &self.config;
        let t = self.step as f64;
        // Bias corrections are computed in f64 so that f32 training does not
        // lose precision in `1 - beta^t` for small t.
        let bias1 = 1.0 - c.beta1.powf(t);
        let bias2 = 1.0 - c.beta2.powf(t);
        let decay = cast::<T>(1.0 - lr * c.weight_decay);
        let (lr, beta1, beta2, eps) = (
            cast::<T>(lr),
            cast::<T>(c.beta1),
            cast::<T>(c.beta2),
            cast::<T>(c.eps),
        );
        let (bias1, bias2_sqrt) = (cast::<T>(bias1), cast::<T>(bias2.sqrt()));
        let one = T::one();
        for (((p, &g), m), v) in params
            .iter_mut()
            .zip(grads)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *p = *p * decay;
            *m = beta1 * *m + (one - beta1) * g;
            *v = beta2 * *v + (one - beta2) * g * g;
            let m_hat = *m / bias1;
            let v_hat_sqrt = v.sqrt() / bias2_sqrt;
            *p = *p - lr * m_hat / (v_hat_sqrt + eps);
        }
        if c.ema_decay > 0.0 {
            if self.average.is_empty() {
                self.average = params.to_vec();
            } else {
                let b = c.ema_decay.min((1.0 + t) / (10.0 + t));
                let (b, one_b) = (cast::<T>(b), cast::<T>(1.0 - b));
                for (a, &p) in self.average.iter_mut().zip(params.iter()) {
                    *a = b * *a + one_b * p;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adam<T: Float>(n: usize, lr: f64) -> Adam<T> {
        Adam::new(
            n,
            AdamConfig {
                lr,
                ..AdamConfig::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn first_step_is_minus_lr_times_sign_of_gradient() {
        let mut opt = adam::<f64>(4, 0.01);
        let grads = [3.0, -0.002, 1e3, -7.0];
        let mut params = [1.0, 2.0, 3.0, 4.0];
        opt.step(&mut params, &grads).unwrap();
        for ((p, p0), g) in params.iter().zip([1.0, 2.0, 3.0, 4.0]).zip(grads) {
            // Exactly lr * |g| / (|g| + eps): within lr * eps / |g| of lr.
            let expected = p0 - 0.01 * g.signum();
            assert!(
                (p - expected).abs() <= 0.01 * 1e-8 / g.abs() + 1e-15,
                "{p} vs {expected}"
            );
        }
    }

    #[test]
    fn two_steps_match_hand_computation() {
        let mut opt = adam::<f64>(1, 0.1);
        let mut p = [1.0];
        opt.step(&mut p, &[2.0]).unwrap();
        opt.step(&mut p, &[-1.0]).unwrap();
        // Step 1: m=0.2, v=0.004; m_hat=2, v_hat=4; p = 1 - 0.1*2/(2+eps).
        let p1 = 1.0 - 0.1 * 2.0 / (2.0 + 1e-8);
        // Step 2: m = 0.18 - 0.1 = 0.08, v = 0.003996 + 0.001 = 0.004996.
        let m_hat = 0.08 / (1.0 - 0.9f64 * 0.9);
        let v_hat = 0.004996 / (1.0 - 0.999f64 * 0.999);
        let p2 = p1 - 0.1 * m_hat / (v_hat.sqrt() + 1e-8);
        assert!((p[0] - p2).abs() < 1e-12, "{} vs {p2}", p[0]);
    }

    #[test]
    fn minimises_a_quadratic_to_its_analytic_minimum() {
        // f(x) = sum_i a_i (x_i - c_i)^2, minimum at c.
        let a = [1.0f32, 10.0, 0.1];
        let c = [3.0f32, -2.0, 0.5];
        let mut x = [0.0f32; 3];
        let mut opt = adam::<f32>(3, 0.05);
        for _ in 0..5000 {
            let g: Vec<f32> = (0..3).map(|i| 2.0 * a[i] * (x[i] - c[i])).collect();
            opt.step(&mut x, &g).unwrap();
        }
        for i in 0..3 {
            assert!((x[i] - c[i]).abs() < 1e-3, "x = {x:?}");
        }
    }

    #[test]
    fn weight_decay_is_decoupled_from_the_gradient() {
        let config = AdamConfig {
            lr: 0.1,
            weight_decay: 0.5,
            ..AdamConfig::default()
        };
        let mut opt = Adam::<f64>::new(1, config).unwrap();
        let mut p = [2.0];
        opt.step(&mut p, &[0.0]).unwrap();
        // With g = 0 only the decay acts: p *= 1 - lr * wd.
        assert!((p[0] - 2.0 * 0.95).abs() < 1e-15);
    }

    /// The moving average is the weighted sum of the iterates its recursion implies: step 1's
    /// weight is the product of the later `b_s`, step t's `(1 - b_t)` times the later ones, with
    /// the warm-up `b_t = min(decay, (1 + t) / (10 + t))`; and averaging leaves the raw
    /// iterates bit for bit as they are without it.
    #[test]
    fn ema_is_the_weighted_sum_of_the_iterates() {
        let decay = 0.9;
        let config = AdamConfig {
            lr: 0.05,
            ema_decay: decay,
            ..AdamConfig::default()
        };
        let mut plain = Adam::<f64>::new(
            2,
            AdamConfig {
                ema_decay: 0.0,
                ..config
            },
        )
        .unwrap();
        let mut averaged = Adam::<f64>::new(2, config).unwrap();
        let (mut p, mut q) = ([1.0, -0.5], [1.0, -0.5]);
        let mut iterates = Vec::new();
        for t in 1..=40 {
            let g = [(t as f64).sin(), p[0] - 2.0 * p[1]];
            plain.step(&mut p, &g).unwrap();
            averaged.step(&mut q, &g).unwrap();
            assert_eq!(p, q, "averaging changed the raw step {t}");
            iterates.push(p);
        }
        let b = |t: usize| decay.min((1.0 + t as f64) / (10.0 + t as f64));
        let mut expected = [0.0; 2];
        for (i, x) in iterates.iter().enumerate() {
            let t = i + 1;
            let later: f64 = (t + 1..=iterates.len()).map(b).product();
            let w = if t == 1 { later } else { (1.0 - b(t)) * later };
            expected[0] += w * x[0];
            expected[1] += w * x[1];
        }
        let mut avg = q;
        averaged.swap_average(&mut avg).unwrap();
        for (a, e) in avg.iter().zip(expected) {
            assert!((a - e).abs() < 1e-13, "{a} vs {e}");
        }
        // Swapping back restores the raw parameters; a state without averaging swaps nothing.
        averaged.swap_average(&mut avg).unwrap();
        assert_eq!(avg, q);
        let mut r = p;
        plain.swap_average(&mut r).unwrap();
        assert_eq!(r, p);
    }

    /// The average survives a round trip through JSON; a state without it leaves it out.
    #[test]
    fn ema_state_round_trips() {
        let config = AdamConfig {
            ema_decay: 0.99,
            ..AdamConfig::default()
        };
        let mut opt = Adam::<f64>::new(2, config).unwrap();
        let mut p = [0.3, 0.7];
        for _ in 0..3 {
            opt.step(&mut p, &[1.0, -1.0]).unwrap();
        }
        let back: Adam<f64> = serde_json::from_str(&serde_json::to_string(&opt).unwrap()).unwrap();
        assert_eq!(back, opt);
        let plain = Adam::<f64>::new(2, AdamConfig::default()).unwrap();
        let text = serde_json::to_string(&plain).unwrap();
        assert!(!text.contains("ema") && !text.contains("average"), "{text}");
        let bad = AdamConfig {
            ema_decay: 1.0,
            ..AdamConfig::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(OptimError::BadSetting {
                name: "ema_decay",
                ..
            })
        ));
    }

    /// The cosine schedule's learning rates are PyTorch's `CosineAnnealingLR` (eta_min 0):
    /// lr at the first step, lr / 2 half way, 0 after the last; each step's size is that
    /// learning rate (a first step moves a parameter by lr * sign(g)).
    #[test]
    fn cosine_schedule_anneals_from_lr_to_zero() {
        let config = AdamConfig {
            lr: 0.1,
            cosine_steps: 4,
            ..AdamConfig::default()
        };
        let mut opt = Adam::<f64>::new(1, config).unwrap();
        let expected = [
            0.1,
            0.1 * (2.0 + 2f64.sqrt()) / 4.0,
            0.05,
            0.1 * (2.0 - 2f64.sqrt()) / 4.0,
            0.0,
            0.0,
        ];
        for (t, lr) in expected.into_iter().enumerate() {
            assert!(
                (opt.current_lr() - lr).abs() < 1e-15,
                "step {t}: {}",
                opt.current_lr()
            );
            opt.step(&mut [0.0], &[1.0]).unwrap();
        }
        let mut first = Adam::<f64>::new(1, config).unwrap();
        let mut p = [1.0];
        first.step(&mut p, &[-3.0]).unwrap();
        assert!((p[0] - 1.1).abs() < 1e-9, "{}", p[0]);
        // Without a schedule the rate stays lr.
        let mut constant = adam::<f64>(1, 0.1);
        for _ in 0..10 {
            constant.step(&mut [0.0], &[1.0]).unwrap();
        }
        assert_eq!(constant.current_lr(), 0.1);
    }

    /// A state saved before schedules (no `cosine_steps`) reads as a constant rate.
    #[test]
    fn a_state_without_a_schedule_reads_as_constant() {
        let old = r#"{"lr":0.01,"beta1":0.9,"beta2":0.999,"eps":1e-8,"weight_decay":0.0}"#;
        let config: AdamConfig = serde_json::from_str(old).unwrap();
        assert_eq!(config.cosine_steps, 0);
        assert_eq!(
            config,
            AdamConfig {
                lr: 0.01,
                ..AdamConfig::default()
            }
        );
    }

    #[test]
    fn state_resumes_identically_after_serde() {
        let mut a = adam::<f64>(2, 0.01);
        let mut pa = [0.5, -0.5];
        a.step(&mut pa, &[1.0, 2.0]).unwrap();
        let mut b: Adam<f64> = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        let mut pb = pa;
        a.step(&mut pa, &[-0.3, 0.7]).unwrap();
        b.step(&mut pb, &[-0.3, 0.7]).unwrap();
        assert_eq!(pa, pb);
        assert_eq!(b.step_count(), 2);
    }

    #[test]
    fn rejects_bad_settings_and_lengths() {
        let bad = AdamConfig {
            beta2: 1.0,
            ..AdamConfig::default()
        };
        assert!(matches!(
            Adam::<f64>::new(1, bad),
            Err(OptimError::BadSetting { name: "beta2", .. })
        ));
        let mut opt = adam::<f64>(2, 0.01);
        assert!(opt.set_lr(f64::NAN).is_err());
        let err = opt.step(&mut [0.0; 2], &[0.0; 3]).unwrap_err();
        assert_eq!(
            err,
            OptimError::Length {
                expected: 2,
                params: 2,
                grads: 3
            }
        );
    }
}
