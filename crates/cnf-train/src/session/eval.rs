//! Evaluating a session's model on test points: the NLL with its standard error, the Gaussian
//! baseline beside it, and W2 sample quality.
use std::path::Path;

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;

use super::{EvalOptions, LoadedFlow, Session};
use crate::data::{dequantize, read_table, toy_test, Table, ToySet};
use crate::error::TrainError;
use crate::gaussian::Gaussian;
use crate::model::{file_sha256, DataSource};

/// The result of [`Session::evaluate`] (also the JSON object `cnf eval --json` prints).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Mean NLL of the test points (data space, exact trace): `-log p(x | c)` for a
    /// conditional model.
    pub test_nll: f64,
    /// Test NLL divided by the number of dimensions.
    pub test_nll_per_dim: f64,
    /// Test points.
    pub n: usize,
    /// Standard error of `test_nll`; `null` for a single point.
    pub stderr: Option<f64>,
    /// NLL of the full-covariance Gaussian fitted to the training split (when the points are
    /// the run's test split); for a conditional model the conditional of the joint Gaussian of
    /// x and c (a linear-Gaussian regression of x on c).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gaussian_nll: Option<f64>,
    /// Its standard error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gaussian_stderr: Option<f64>,
    /// Why the Gaussian baseline is missing, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gaussian_missing: Option<String>,
    /// Why the Gaussian baseline is less certain than its stderr says (nearly collinear
    /// columns), when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gaussian_warning: Option<String>,
    /// Field evaluations summed over all solves.
    pub nfe: usize,
    /// Number of ODE solves (of up to [`super::SOLVE_POINTS`] points each, with their own
    /// steps).
    pub solves: usize,
    /// `nfe / solves`: the evaluations one solve took, on average.
    pub nfe_per_solve: f64,
    /// 2-Wasserstein distance (data space, exact OT) between `w2_n` model samples (seed 0) and
    /// the first `w2_n` test points: sample quality next to the likelihood. `null` when it
    /// could not be computed (`w2_missing` says why).
    pub w2: Option<f64>,
    /// Why `w2` is missing, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub w2_missing: Option<String>,
    /// Points on each side of `w2`.
    pub w2_n: usize,
    /// The solver in the command line's words.
    pub solver: String,
    /// "f32" or "f64".
    pub precision: &'static str,
    /// What the points are: the toy test set, the run's test split, or a whole file.
    pub points: String,
    /// The context columns of a conditional model (the NLL is `-log p(x | c)`); empty for an
    /// unconditional one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub given: Vec<String>,
}

/// Points to evaluate on.
struct TestPoints {
    test: Table,
    /// The training split, when the points are the run's test split (for the baseline).
    train: Option<Table>,
    /// What the points are.
    points: String,
}

/// The mean and, from two points on, its standard error.
fn mean_stderr(nll: &[f64]) -> (f64, Option<f64>) {
    let n = nll.len() as f64;
    let mean = nll.iter().sum::<f64>() / n;
    if nll.len() < 2 {
        return (mean, None);
    }
    let var = nll.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, Some((var / n).sqrt()))
}

/// W2 between `n = min(rows, W2_MAX_POINTS)` samples of the model (seed 0) and the first `n`
/// test points, in data space. For a conditional model, one draw given each of those points'
/// contexts, compared as rows `[x | c]` (the joint of the draws and the test contexts against
/// the test rows).
fn sample_w2(flow: &LoadedFlow, test: &Table) -> Result<(f64, usize), TrainError> {
    let n = test.n_rows().min(crate::fm::W2_MAX_POINTS);
    let first = test.select_rows(&(0..n).collect::<Vec<_>>());
    let (d, k) = (flow.dim(), flow.context_dim());
    let mut rng = StdRng::seed_from_u64(0);
    let samples = if k == 0 {
        flow.sample_with(n, &mut rng)?
    } else {
        let context = first.select_columns(d..d + k);
        let x = flow.sample_given_with(1, context.data(), &mut rng)?;
        Table::new(n, d, x, flow.config().columns.clone())?
            .concat_columns(&context)?
            .into_data()
    };
    let w2 = crate::fm::w2_distance(&samples, first.data(), d + k)
        .map_err(|e| TrainError::Invalid(format!("W2: {e}")))?;
    Ok((w2, n))
}

/// The Gaussian baseline's mean NLL on `test` and its standard error, with a warning when
/// its covariance is nearly singular: the full-covariance Gaussian fitted to `train`, or, for
/// a conditional model (`k` context columns last), the conditional of the joint Gaussian of
/// `[x | c]`, log p(x | c) = log p(x, c) - log p(c) (linear-Gaussian regression of x on c).
fn gaussian_baseline(
    train: &Table,
    test: &Table,
    k: usize,
) -> Result<(f64, Option<f64>, Option<String>), crate::error::DataError> {
    let joint = Gaussian::fit(train)?;
    if k == 0 {
        let (nll, se) = joint.mean_nll(test)?;
        return Ok((nll, Some(se), joint.warning()));
    }
    let d = train.n_cols() - k;
    let marginal = Gaussian::fit(&train.select_columns(d..d + k))?;
    let nll = test
        .rows()
        .map(|r| Ok(marginal.log_density(&r[d..])? - joint.log_density(r)?))
        .collect::<Result<Vec<f64>, crate::error::DataError>>()?;
    let (mean, se) = mean_stderr(&nll);
    Ok((mean, se, joint.warning()))
}

impl Session {
    /// The test points `data` names for this model: a toy set's fixed 10k test set, the
    /// recorded test split of the training file (recognised by its content, wherever it is
    /// now; with the training split for the Gaussian baseline), or all rows of another file
    /// in the model's columns. Integer columns the model was trained dequantised are
    /// dequantised with seeded noise.
    fn test_points(&self, data: &str, notes: &mut Vec<String>) -> Result<TestPoints, TrainError> {
        let config = &self.config;
        let toy = data.parse::<ToySet>();
        if toy.is_ok() && Path::new(data).exists() {
            return Err(TrainError::Invalid(format!(
                "--data {data:?} names both a toy set and a file here; write ./{data} for the file"
            )));
        }
        let (test, train, points) = match toy {
            Ok(set) => (
                toy_test(set),
                None,
                format!("the fixed 10k test set of {}", set.name()),
            ),
            Err(_) => {
                let path = Path::new(data);
                match &config.data {
                    DataSource::Table {
                        sha256: Some(h),
                        split,
                        ..
                    } if *h == file_sha256(path)? => {
                        let table = read_table(path, &config.data.selection())?;
                        let (train, _, test) = table.split(*split, config.seed)?;
                        (
                            test,
                            Some(train),
                            format!("the test split of {}", path.display()),
                        )
                    }
                    _ => (
                        super::points::read_points(config, path, notes)?,
                        None,
                        format!("all rows of {}", path.display()),
                    ),
                }
            }
        };
        if test.n_rows() == 0 {
            return Err(TrainError::Invalid(format!("{points} has no rows")));
        }
        // A model trained on dequantised integer columns is a density of x + u: evaluate it
        // (and the Gaussian baseline, fitted to the training split as dequantised for training)
        // at dequantised points, with seeded noise (docs/train.md).
        let deq = config
            .standardizer
            .as_ref()
            .map_or(&[][..], |s| s.dequantized.as_slice());
        if deq.is_empty() {
            return Ok(TestPoints {
                test,
                train,
                points,
            });
        }
        let names: Vec<&str> = deq
            .iter()
            .filter_map(|&j| test.names().get(j).map(String::as_str))
            .collect();
        Ok(TestPoints {
            test: dequantize(&test, deq, config.seed.wrapping_add(3))?,
            train: train
                .map(|t| dequantize(&t, deq, config.seed))
                .transpose()?,
            points: format!(
                "{points}, with {} dequantised (x + U(0, 1))",
                names.join(", ")
            ),
        })
    }

    /// Evaluates the model on the points `data` names (a toy set, the training file, which
    /// gives its recorded test split, or another file): test NLL with its standard error and
    /// the work done, the Gaussian baseline on the run's test split, and W2 between model
    /// samples and test points. W2 is secondary: when it fails, `w2_missing` says why and the
    /// NLL still stands. Returns the evaluation and the notes of reading the file.
    ///
    /// # Errors
    /// The points cannot be read or are not the model's columns; the model cannot be loaded
    /// as `options` say; a log-density solve fails.
    pub fn evaluate(
        &self,
        data: &str,
        options: &EvalOptions,
    ) -> Result<(Evaluation, Vec<String>), TrainError> {
        let mut notes = Vec::new();
        let TestPoints {
            test,
            train,
            points,
        } = self.test_points(data, &mut notes)?;
        let flow = self.flow(options)?;
        let mut logp = Vec::with_capacity(test.n_rows());
        let stats = flow.log_density_chunks(&test, &mut |_, lp| {
            logp.extend_from_slice(lp);
            Ok(())
        })?;
        let nll: Vec<f64> = logp.iter().map(|v| -v).collect();
        let (test_nll, stderr) = mean_stderr(&nll);
        let k = self.config.context_dim();
        let (gaussian, gaussian_missing, gaussian_warning) = match &train {
            Some(train) => match gaussian_baseline(train, &test, k) {
                Ok((nll, se, warning)) => (Some((nll, se)), None, warning),
                Err(e) => (None, Some(format!("no Gaussian baseline: {e}")), None),
            },
            None => (None, None, None),
        };
        let (w2, w2_missing) = match sample_w2(&flow, &test) {
            Ok((w, n)) => (Some((w, n)), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let solves = LoadedFlow::solves_for(nll.len());
        let evaluation = Evaluation {
            test_nll,
            test_nll_per_dim: test_nll / self.config.mlp.dim as f64,
            n: nll.len(),
            stderr,
            gaussian_nll: gaussian.map(|g| g.0),
            gaussian_stderr: gaussian.and_then(|g| g.1),
            gaussian_missing,
            gaussian_warning,
            nfe: stats.nfe,
            solves,
            nfe_per_solve: stats.nfe as f64 / solves.max(1) as f64,
            w2: w2.map(|w| w.0),
            w2_missing,
            w2_n: w2.map_or(0, |w| w.1),
            solver: flow.describe_solver(),
            precision: flow.precision().as_str(),
            points,
            given: self.context_columns().to_vec(),
        };
        Ok((evaluation, notes))
    }
}
