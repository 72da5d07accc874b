//! The clustering flags (`topics`, `topics-eval`).

use clap::Args;
use vocmine::cluster::TopicConfig;

#[derive(Args, Clone)]
pub(crate) struct ClusterArgs {
    /// Smallest topic [default: 0.5% of the comments clustered, at least 10]
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    min_topic_size: usize,
    /// HDBSCAN's min_samples [default: 3 when fewer than 400 comments are clustered, else 5]
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    min_samples: usize,
    /// Cluster at most this many comments (seeded sample); the rest are assigned
    #[arg(long, default_value_t = 10_000)]
    max_sample: usize,
    /// PCA dimensions the clustering runs in (10 measured best on three labelled sets, see
    /// benches/results/topics_subject_20261206.md)
    #[arg(long, default_value_t = 10)]
    dims: usize,
    /// Largest topic as a share of the comments clustered: a soft target. It caps the clusters
    /// of a first clustering, unless the cap would leave more than half of the comments
    /// unplaced (the data has one or two big topics), in which case the uncapped clustering is
    /// kept; comments assigned to a topic's centroid afterwards, and on later runs, can make a
    /// topic larger
    #[arg(long, default_value_t = 0.25)]
    max_share: f32,
    /// A topic's radius covers this share of its members (assignment threshold)
    #[arg(long, default_value_t = 1.0)]
    radius_quantile: f32,
    /// Cosine similarity a comment may fall short of a topic's radius and still join it: the
    /// clustering keeps only dense cores, and the comments just outside them belong there too
    #[arg(long, default_value_t = 0.03)]
    radius_slack: f32,
    /// Seed
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

impl ClusterArgs {
    /// The clustering settings the flags give.
    pub(crate) fn config(&self) -> TopicConfig {
        TopicConfig {
            min_cluster_size: self.min_topic_size,
            min_samples: self.min_samples,
            max_sample: self.max_sample.max(2),
            dims: self.dims.max(1),
            max_share: self.max_share.clamp(0.0, 1.0),
            radius_quantile: self.radius_quantile.clamp(0.01, 1.0),
            radius_slack: self.radius_slack.clamp(0.0, 1.0),
            seed: self.seed,
            ..TopicConfig::default()
        }
    }
}
