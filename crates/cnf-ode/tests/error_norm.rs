//! The per-sample error norm ([`ErrorNorm::PerSample`]) against mathematics: a batch of
//! independent linear ODEs with very different rates, solved as one state, whose exact solutions
//! are known. The RMS norm over the batch lets the fast samples' local errors hide behind the
//! slow ones; the per-sample norm holds every sample to the tolerances.
use cnf_ode::{
    Block, Bs3, Differentiation, Dop853, Dopri5, ErrorNorm, OdeError, RkMethod, SampleLayout,
    Solver, Tableau, Tsit5,
};
use proptest::prelude::*;

/// Sample b: z' = A_b z with A_b = [[-a, w], [-w, -a]] (a damped rotation) and the log-det
/// column D' = tr(A_b) = -2a, exactly as a CNF's augmented state `[z (B x 2), D (B)]`.
#[derive(Clone)]
struct Batch {
    a: Vec<f64>,
    w: Vec<f64>,
}

impl Batch {
    fn samples(&self) -> usize {
        self.a.len()
    }
    fn layout(&self) -> SampleLayout {
        SampleLayout::rows(self.samples(), 2).then_columns(1)
    }
    fn y0(&self) -> Vec<f64> {
        let b = self.samples();
        let mut y = Vec::with_capacity(3 * b);
        for i in 0..b {
            let phi = i as f64;
            y.extend([phi.cos(), phi.sin()]);
        }
        y.extend(std::iter::repeat_n(0.0, b));
        y
    }
    fn rhs(&self) -> impl FnMut(f64, &[f64], &mut [f64]) + '_ {
        let b = self.samples();
        move |_t, y, dy| {
            let (z, d) = y.split_at(2 * b);
            let (dz, dd) = dy.split_at_mut(2 * b);
            for i in 0..b {
                let (a, w) = (self.a[i], self.w[i]);
                dz[2 * i] = -a * z[2 * i] + w * z[2 * i + 1];
                dz[2 * i + 1] = -w * z[2 * i] - a * z[2 * i + 1];
                dd[i] = -2.0 * a + 0.0 * d[i];
            }
        }
    }
    fn exact(&self, t: f64) -> Vec<f64> {
        let b = self.samples();
        let y0 = self.y0();
        let mut y = vec![0.0; 3 * b];
        for i in 0..b {
            let (a, w) = (self.a[i], self.w[i]);
            let (c, s, e) = ((w * t).cos(), (w * t).sin(), (-a * t).exp());
            let (x0, y0) = (y0[2 * i], y0[2 * i + 1]);
            y[2 * i] = e * (c * x0 + s * y0);
            y[2 * i + 1] = e * (-s * x0 + c * y0);
            y[2 * b + i] = -2.0 * a * t;
        }
        y
    }
    /// Each sample's largest error (over its z and D) against the exact solution at t.
    fn errors(&self, y: &[f64], t: f64) -> Vec<f64> {
        let b = self.samples();
        let ex = self.exact(t);
        (0..b)
            .map(|i| {
                [2 * i, 2 * i + 1, 2 * b + i]
                    .iter()
                    .map(|&j| (y[j] - ex[j]).abs())
                    .fold(0.0, f64::max)
            })
            .collect()
    }
}

/// 63 slow samples (rotation rate 1) and one fast one (rate 40) at index 17.
fn mixed() -> Batch {
    let b = 64;
    let w = (0..b).map(|i| if i == 17 { 40.0 } else { 1.0 }).collect();
    let a = (0..b).map(|i| 0.1 + 0.01 * i as f64).collect();
    Batch { a, w }
}

fn solve(batch: &Batch, tab: &'static Tableau, tol: f64, norm: ErrorNorm) -> (Vec<f64>, usize) {
    let sol = Solver::new(tab)
        .rtol(tol)
        .atol(tol)
        .error_norm(norm)
        .solve(batch.rhs(), 0.0, 1.0, &batch.y0())
        .unwrap();
    (sol.y, sol.stats.accepted)
}

/// The fast sample solved alone: the error the tolerances buy for it.
fn alone(batch: &Batch, i: usize, tab: &'static Tableau, tol: f64) -> f64 {
    let one = Batch {
        a: vec![batch.a[i]],
        w: vec![batch.w[i]],
    };
    let mut one_y0 = one.y0();
    let y0 = batch.y0();
    one_y0[..2].copy_from_slice(&y0[2 * i..2 * i + 2]);
    let sol = Solver::new(tab)
        .rtol(tol)
        .atol(tol)
        .solve(one.rhs(), 0.0, 1.0, &one_y0)
        .unwrap();
    let ex = {
        let (a, w) = (one.a[0], one.w[0]);
        let (c, s, e) = (w.cos(), w.sin(), (-a).exp());
        let (x0, y0) = (one_y0[0], one_y0[1]);
        [e * (c * x0 + s * y0), e * (-s * x0 + c * y0), -2.0 * a]
    };
    (0..3).map(|j| (sol.y[j] - ex[j]).abs()).fold(0.0, f64::max)
}

#[test]
fn per_sample_norm_holds_the_fast_sample_to_its_tolerance_where_rms_does_not() {
    let batch = mixed();
    for tab in [
        Dopri5.tableau(),
        Tsit5.tableau(),
        Dop853.tableau(),
        Bs3.tableau(),
    ] {
        for tol in [1e-5, 1e-7] {
            let (y_rms, steps_rms) = solve(&batch, tab, tol, ErrorNorm::Rms);
            let (y_ps, steps_ps) = solve(&batch, tab, tol, ErrorNorm::PerSample(batch.layout()));
            let e_rms = batch.errors(&y_rms, 1.0);
            let e_ps = batch.errors(&y_ps, 1.0);
            let solo = alone(&batch, 17, tab, tol);
            let worst_ps = e_ps.iter().fold(0.0, |m: f64, &e| m.max(e));
            let (name, fast_rms) = (tab.name, e_rms[17]);
            eprintln!(
                "{name} tol {tol:e}: fast sample error RMS {fast_rms:.2e} ({steps_rms} steps), \
                 per-sample worst {worst_ps:.2e} ({steps_ps} steps), alone {solo:.2e}"
            );
            // Per sample: no sample is worse than the fast one solved on its own (up to the
            // controller's noise), so the worst error is tolerance-proportional.
            assert!(
                worst_ps <= 2.0 * solo,
                "{name} {tol}: per-sample worst {worst_ps:e} vs alone {solo:e}"
            );
            // RMS over 64 samples: the fast sample's local errors are diluted by sqrt(64).
            assert!(
                fast_rms > 3.0 * solo && fast_rms > 3.0 * worst_ps,
                "{name} {tol}: RMS fast {fast_rms:e}, alone {solo:e}, per-sample {worst_ps:e}"
            );
            assert!(steps_ps > steps_rms, "{name}: {steps_ps} vs {steps_rms}");
        }
    }
}

/// Accepted steps and the final state of a solve with `norm`.
fn run(
    tab: &'static Tableau,
    y0: &[f64],
    rates: &[f64],
    norm: ErrorNorm,
    window: Option<std::ops::Range<usize>>,
) -> Result<(usize, usize, Vec<f64>), OdeError> {
    let mut s = Solver::new(tab).rtol(1e-6).atol(1e-8).error_norm(norm);
    if let Some(w) = window {
        s = s.error_components(w);
    }
    let sol = s.solve(
        |t, y, dy| {
            for ((d, &v), &k) in dy.iter_mut().zip(y).zip(rates) {
                *d = -k * v + (k * t).sin();
            }
        },
        0.0,
        2.0,
        &y0.to_vec(),
    )?;
    Ok((sol.stats.accepted, sol.stats.rejected, sol.y))
}

#[test]
fn one_group_is_the_rms_norm_exactly() {
    let y0: Vec<f64> = (0..12).map(|i| 1.0 + 0.3 * i as f64).collect();
    let rates: Vec<f64> = (0..12).map(|i| 0.5 + 3.0 * i as f64).collect();
    for tab in [
        Dopri5.tableau(),
        Tsit5.tableau(),
        Dop853.tableau(),
        Bs3.tableau(),
    ] {
        for window in [None, Some(2..9)] {
            let rms = run(tab, &y0, &rates, ErrorNorm::Rms, window.clone()).unwrap();
            for layout in [
                SampleLayout::rows(1, 12),
                SampleLayout::rows(1, 5).then_rows(7),
                SampleLayout::new(0, vec![]),
                SampleLayout::new(3, vec![Block::Shared(12)]),
            ] {
                let one = run(
                    tab,
                    &y0,
                    &rates,
                    ErrorNorm::PerSample(layout.clone()),
                    window.clone(),
                )
                .unwrap();
                assert_eq!(one, rms, "{} {layout:?} {window:?}", tab.name);
            }
        }
    }
}

#[test]
fn components_outside_error_components_are_in_no_group() {
    // [z (B x 2), D (B), R (B)]: R' is a wild regulariser-like integrand left out of the norm.
    let batch = mixed();
    let b = batch.samples();
    let layout = batch.layout();
    let plain = Solver::new(Dopri5)
        .rtol(1e-6)
        .atol(1e-6)
        .error_norm(ErrorNorm::PerSample(layout))
        .solve(batch.rhs(), 0.0, 1.0, &batch.y0())
        .unwrap();
    let mut rhs = batch.rhs();
    let mut y0 = batch.y0();
    y0.extend(std::iter::repeat_n(0.0, b));
    let with_r = Solver::new(Dopri5)
        .rtol(1e-6)
        .atol(1e-6)
        .error_norm(ErrorNorm::PerSample(batch.layout().then_columns(1)))
        .error_components(0..3 * b)
        .solve(
            |t, y, dy| {
                rhs(t, &y[..3 * b], &mut dy[..3 * b]);
                for (i, r) in dy[3 * b..].iter_mut().enumerate() {
                    *r = 1e3 * (1e3 * t * (1.0 + i as f64)).sin();
                }
            },
            0.0,
            1.0,
            &y0,
        )
        .unwrap();
    assert_eq!(plain.stats.accepted, with_r.stats.accepted);
    assert_eq!(plain.stats.rejected, with_r.stats.rejected);
    assert_eq!(plain.y[..], with_r.y[..3 * b]);
}

#[test]
fn a_layout_longer_than_the_state_is_an_error() {
    let e = run(
        Dopri5.tableau(),
        &[1.0; 4],
        &[1.0; 4],
        ErrorNorm::PerSample(SampleLayout::rows(3, 2)),
        None,
    )
    .unwrap_err();
    assert!(matches!(e, OdeError::DimensionMismatch { .. }), "{e}");
}

/// The sum of the samples' `z` at t = 1 as a loss of the batch; its gradient by backsolve with
/// the per-sample norm matches the exact one (exp(A_b^T) for each sample).
#[test]
fn backsolve_with_the_per_sample_norm_gives_the_gradient() {
    struct Sys(Batch);
    impl cnf_ode::VjpSystem<f64> for Sys {
        fn rhs(&mut self, t: f64, y: &[f64], dy: &mut [f64]) {
            (self.0.rhs())(t, y, dy)
        }
        fn vjp(&mut self, t: f64, y: &[f64], a: &[f64], out: cnf_ode::VjpOut<'_, f64>) {
            (self.0.rhs())(t, y, out.f);
            let b = self.0.samples();
            for i in 0..b {
                let (al, w) = (self.0.a[i], self.0.w[i]);
                // A^T a for A = [[-al, w], [-w, -al]].
                out.a_y[2 * i] += -al * a[2 * i] - w * a[2 * i + 1];
                out.a_y[2 * i + 1] += w * a[2 * i] - al * a[2 * i + 1];
            }
        }
        fn num_params(&self) -> usize {
            0
        }
    }
    let batch = mixed();
    let b = batch.samples();
    for norm in [ErrorNorm::Rms, ErrorNorm::PerSample(batch.layout())] {
        let g = Solver::new(Dopri5)
            .rtol(1e-9)
            .atol(1e-9)
            .error_norm(norm.clone())
            .solve_with_gradient(
                &mut Sys(batch.clone()),
                0.0,
                1.0,
                &batch.y0(),
                |_y, a| a[..2 * b].fill(1.0),
                Differentiation::backsolve(1e-9, 1e-9),
            )
            .unwrap();
        for i in 0..b {
            // d/dz0 of sum(exp(A t) z0) = exp(A^T t) 1 = e^{-a t} (R(-wt) applied to (1, 1)).
            let (a, w) = (batch.a[i], batch.w[i]);
            let (c, s, e) = (w.cos(), w.sin(), (-a).exp());
            let want = [e * (c - s), e * (s + c)];
            for (got, want) in g.grad_y0[2 * i..2 * i + 2].iter().zip(want) {
                assert!(
                    (got - want).abs() < 1e-6,
                    "{norm:?} sample {i}: {got} vs {want}"
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// The norm is the max over samples: permuting the samples permutes the solution and leaves
    /// the accepted and rejected steps as they are, exactly.
    #[test]
    fn permuting_samples_permutes_the_solution(
        rates in proptest::collection::vec(0.1f64..30.0, 2..12),
        shift in 1usize..11,
    ) {
        let b = rates.len();
        let y0: Vec<f64> = (0..2 * b).map(|i| 1.0 + 0.1 * i as f64).collect();
        let perm: Vec<usize> = (0..b).map(|i| (i + shift) % b).collect();
        let solve = |rates: &[f64], y0: &[f64]| {
            Solver::new(Dopri5)
                .rtol(1e-6)
                .atol(1e-8)
                .error_norm(ErrorNorm::PerSample(SampleLayout::rows(b, 2)))
                .solve(
                    |_t, y, dy| {
                        for i in 0..b {
                            let k = rates[i];
                            dy[2 * i] = -k * y[2 * i + 1];
                            dy[2 * i + 1] = k * y[2 * i] - 0.1 * y[2 * i + 1];
                        }
                    },
                    0.0,
                    1.0,
                    &y0.to_vec(),
                )
                .unwrap()
        };
        let base = solve(&rates, &y0);
        let p_rates: Vec<f64> = perm.iter().map(|&j| rates[j]).collect();
        let p_y0: Vec<f64> = perm.iter().flat_map(|&j| [y0[2 * j], y0[2 * j + 1]]).collect();
        let permuted = solve(&p_rates, &p_y0);
        prop_assert_eq!(base.stats.accepted, permuted.stats.accepted);
        prop_assert_eq!(base.stats.rejected, permuted.stats.rejected);
        for (i, &j) in perm.iter().enumerate() {
            prop_assert_eq!(permuted.y[2 * i], base.y[2 * j]);
            prop_assert_eq!(permuted.y[2 * i + 1], base.y[2 * j + 1]);
        }
    }

    /// The per-sample norm is never below the RMS (a mean square is a weighted mean of the
    /// groups' mean squares), so no sample ends less accurate than under the RMS norm by more
    /// than the controller's noise, and the worst one is at least as accurate.
    #[test]
    fn per_sample_worst_error_is_not_above_the_rms_one(
        fast in 5.0f64..60.0,
        at in 0usize..16,
    ) {
        let b = 16;
        let w = (0..b).map(|i| if i == at { fast } else { 1.0 }).collect();
        let batch = Batch { a: vec![0.2; b], w };
        let (y_rms, _) = solve(&batch, Dopri5.tableau(), 1e-6, ErrorNorm::Rms);
        let (y_ps, _) = solve(&batch, Dopri5.tableau(), 1e-6, ErrorNorm::PerSample(batch.layout()));
        let worst = |e: Vec<f64>| e.into_iter().fold(0.0, f64::max);
        let (w_rms, w_ps) = (worst(batch.errors(&y_rms, 1.0)), worst(batch.errors(&y_ps, 1.0)));
        prop_assert!(w_ps <= 1.5 * w_rms, "per-sample {:e} vs RMS {:e}", w_ps, w_rms);
    }
}
