//! Scale-out: agents with `shard = "0/2"` and `"1/2"` plan disjoint sets of flows whose union
//! is what one agent plans.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use sgprobe::config::Config;
use sgprobe::plan::plan;
use sgprobe::policy::layers;

fn config(shard: Option<&str>) -> Config {
    let mut text = String::from("[agent]\n");
    if let Some(shard) = shard {
        let _ = writeln!(text, "shard = \"{shard}\"");
    }
    text.push_str(
        "[[group]]\nid = \"g\"\ncloud = \"aws\"\n[[group.ingress]]\naction = \"accept\"\nprotocol = \"tcp\"\nports = \"8000-8010\"\npeer = \"all\"\n",
    );
    for i in 0..200 {
        let _ = writeln!(
            text,
            "[[instance]]\nname = \"web-{i}\"\nid = \"i-{i:04}\"\naddresses = [\"10.0.{}.{}\"]\nsecurity_groups = [\"g\"]",
            i / 250,
            i % 250 + 1
        );
    }
    Config::parse(Path::new("sgprobe.toml"), &text).expect("valid config")
}

/// Every (instance, planned flow) an agent with this config checks.
fn planned(config: &Config) -> BTreeSet<(String, String)> {
    let inv = &config.inventory;
    inv.instances
        .iter()
        .filter(|i| config.agent.shard.owns(i))
        .flat_map(|instance| {
            let layers = layers(inv, instance).expect("links");
            plan(instance, &layers)
                .into_iter()
                .map(|p| (instance.name.clone(), format!("{p:?}")))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn two_shards_plan_disjoint_halves_of_the_whole() {
    let whole = planned(&config(None));
    let first = planned(&config(Some("0/2")));
    let second = planned(&config(Some("1/2")));
    assert!(first.is_disjoint(&second));
    assert_eq!(&first | &second, whole);
    assert!(
        !first.is_empty() && !second.is_empty(),
        "both shards get work"
    );
}

#[test]
fn a_bad_shard_names_the_file_line_and_key() {
    let error = Config::parse(
        Path::new("sgprobe.toml"),
        "[agent]\nshard = \"2/2\"\n[[group]]\nid = \"g\"\ncloud = \"aws\"\n",
    )
    .expect_err("index out of range")
    .to_string();
    assert!(error.starts_with("sgprobe.toml:2:"), "{error}");
    assert!(error.contains("agent.shard"), "{error}");
}
