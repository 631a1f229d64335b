//! `Cnf::trajectory`: one solve with output times gives the points along the flow. For a linear
//! field v = A z the point at time t is exp(A t) x.
use cnf_field::Linear;
use cnf_flow::{Batching, Cnf};
use cnf_ode::{Method, SolverSpec};
use nalgebra::{DMatrix, DVector};

#[test]
fn trajectory_of_a_linear_flow_is_exp_at() {
    let a = [-0.6, 0.9, -0.4, 0.2, -0.1, 0.5, 0.3, -0.7, -0.2];
    let field = Linear::new(3, &a, &[0.0; 3]).unwrap();
    let x: Vec<f64> = (0..15).map(|i| ((i * 7 % 11) as f64 - 5.0) / 3.0).collect();
    let times: Vec<f64> = (0..=10).map(|k| k as f64 / 10.0).collect();
    for (method, batching) in [
        (
            SolverSpec::adaptive(Method::Dopri5, 1e-10, 1e-10).unwrap(),
            Batching::Whole,
        ),
        (
            SolverSpec::adaptive(Method::Tsit5, 1e-10, 1e-10).unwrap(),
            Batching::Chunks(2),
        ),
    ] {
        let cnf = Cnf::new(field.clone(), method).with_batching(batching);
        let tr = cnf.trajectory(&x, &times).unwrap();
        assert_eq!(tr.points.len(), times.len());
        let mut worst: f64 = 0.0;
        for (t, pts) in times.iter().zip(&tr.points) {
            assert_eq!(pts.len(), x.len());
            let e = (DMatrix::from_row_slice(3, 3, &a) * *t).exp();
            for (p, got) in x.chunks(3).zip(pts.chunks(3)) {
                let want = &e * DVector::from_column_slice(p);
                for (g, w) in got.iter().zip(want.iter()) {
                    worst = worst.max((g - w).abs());
                }
            }
        }
        assert!(worst < 1e-8, "{worst}");
        // The trajectory's last time is `transform`'s result.
        let end = cnf.transform(&x, 0.0, 1.0).unwrap().points;
        assert_eq!(tr.points.last().unwrap(), &end);
    }
    let cnf = Cnf::new(
        field,
        SolverSpec::adaptive(Method::Dopri5, 1e-5, 1e-5).unwrap(),
    );
    assert!(cnf.trajectory(&x, &[]).is_err());
}
