//! [[discover]]: the instances a source lists are checked only where they match its filters,
//! as Prometheus' EC2 discovery keeps targets by tag.

use sgprobe::config::Config;

const INSTANCES: &str = r#"{"Reservations": [{"Instances": [
  {"InstanceId": "i-1", "VpcId": "vpc-1", "SubnetId": "subnet-a", "PrivateIpAddress": "10.0.1.1", "SecurityGroups": [{"GroupId": "sg-1"}], "Tags": [{"Key": "Name", "Value": "web-1"}, {"Key": "team", "Value": "web"}]},
  {"InstanceId": "i-2", "VpcId": "vpc-2", "SubnetId": "subnet-b", "PrivateIpAddress": "10.0.2.1", "SecurityGroups": [{"GroupId": "sg-1"}], "Tags": [{"Key": "Name", "Value": "web-2"}, {"Key": "team", "Value": "web"}]},
  {"InstanceId": "i-3", "VpcId": "vpc-1", "SubnetId": "subnet-a", "PrivateIpAddress": "10.0.1.3", "SecurityGroups": [{"GroupId": "sg-2"}], "Tags": [{"Key": "Name", "Value": "db-1"}, {"Key": "team", "Value": "db"}]}
]}]}"#;

const GROUPS: &str = r#"{"SecurityGroups": [{"GroupId": "sg-1", "IpPermissions": [], "IpPermissionsEgress": []}, {"GroupId": "sg-2", "IpPermissions": [], "IpPermissionsEgress": []}]}"#;

fn names(discover: &str) -> Result<Vec<String>, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("instances.json"), INSTANCES).expect("write");
    std::fs::write(dir.path().join("groups.json"), GROUPS).expect("write");
    let text = format!(
        "[[source]]\nformat = \"aws\"\npath = \"groups.json\"\n[[source]]\nname = \"ec2\"\nformat = \"aws\"\npath = \"instances.json\"\n{discover}"
    );
    let config = dir.path().join("sgprobe.toml");
    std::fs::write(&config, text).expect("write");
    Config::load(&config, sgprobe::sources::Reading::Strict)
        .map(|c| {
            c.inventory
                .instances
                .iter()
                .map(|i| i.name.clone())
                .collect()
        })
        .map_err(|e| e.to_string())
}

#[test]
fn discover_keeps_the_instances_its_filters_match() {
    let all = names("").expect("loads");
    assert_eq!(all, ["web-1", "web-2", "db-1"]);
    let by_tag =
        names("[[discover]]\nsource = \"ec2\"\ntags = { team = \"web\" }\n").expect("loads");
    assert_eq!(by_tag, ["web-1", "web-2"]);
    let by_tag_and_subnet = names(
        "[[discover]]\nsource = \"ec2\"\ntags = { team = \"web\" }\nsubnets = [\"subnet-a\"]\n",
    )
    .expect("loads");
    assert_eq!(by_tag_and_subnet, ["web-1"]);
    // Two [[discover]] of one source: an instance either matches is kept.
    let either = names(
        "[[discover]]\nsource = \"ec2\"\ngroups = [\"sg-2\"]\n[[discover]]\nsource = \"ec2\"\nsubnets = [\"subnet-b\"]\n",
    )
    .expect("loads");
    assert_eq!(either, ["web-2", "db-1"]);
    let by_vpc = names("[[discover]]\nsource = \"ec2\"\nvpcs = [\"vpc-1\"]\n").expect("loads");
    assert_eq!(by_vpc, ["web-1", "db-1"]);
}

#[test]
fn discover_of_an_unnamed_source_names_the_line() {
    let error = names("[[discover]]\nsource = \"ec3\"\n").expect_err("no such source");
    assert!(error.contains("sgprobe.toml:9:"), "{error}");
    assert!(error.contains("no [[source]] is named \"ec3\""), "{error}");
}

#[test]
fn every_clouds_instance_tags_become_labels_a_discover_filter_can_match() {
    use sgprobe::sources::{Format, parse};
    // Each cloud's instance list spells its tags its own way (DescribeInstances: AWS
    // `Tags[].Key/Value`, Tencent `Tags[].Key/Value`, Alibaba `Tags.Tag[].TagKey/TagValue`).
    let exports = [
        (
            Format::Aws,
            r#"{"Reservations": [{"Instances": [{"InstanceId": "i-1", "PrivateIpAddress": "10.0.0.1", "Tags": [{"Key": "team", "Value": "web"}, {"Key": "bare"}]}]}]}"#,
        ),
        (
            Format::Tencent,
            r#"{"InstanceSet": [{"InstanceId": "ins-1", "PrivateIpAddresses": ["10.0.0.1"], "Tags": [{"Key": "team", "Value": "web"}, {"Key": "bare"}]}]}"#,
        ),
        (
            Format::Alibaba,
            r#"{"Instances": {"Instance": [{"InstanceId": "i-a1", "VpcAttributes": {"PrivateIpAddress": {"IpAddress": ["10.0.0.1"]}}, "Tags": {"Tag": [{"TagKey": "team", "TagValue": "web"}, {"TagKey": "bare"}]}}]}}"#,
        ),
    ];
    for (format, text) in exports {
        let inventory = parse(format, std::path::Path::new("instances.json"), text, None)
            .unwrap_or_else(|e| panic!("{format:?}: {e}"));
        let labels = &inventory.instances[0].labels;
        assert_eq!(
            labels.get("team").map(String::as_str),
            Some("web"),
            "{format:?}"
        );
        assert_eq!(
            labels.get("bare").map(String::as_str),
            Some(""),
            "{format:?}"
        );
    }
}

/// An auto-scaling group's instances share their Name tag, and anyone who can edit a tag can
/// name an instance after another's id.
const LOOKALIKES: &str = r#"{"Reservations": [{"Instances": [
  {"InstanceId": "i-a", "PrivateIpAddress": "127.9.0.1", "SecurityGroups": [{"GroupId": "sg-1"}], "Tags": [{"Key": "Name", "Value": "web"}]},
  {"InstanceId": "i-b", "PrivateIpAddress": "127.9.0.2", "SecurityGroups": [{"GroupId": "sg-1"}], "Tags": [{"Key": "Name", "Value": "web"}]},
  {"InstanceId": "i-c", "PrivateIpAddress": "127.9.0.3", "SecurityGroups": [{"GroupId": "sg-1"}], "Tags": [{"Key": "Name", "Value": "web"}]},
  {"InstanceId": "i-victim", "PrivateIpAddress": "127.9.0.4", "SecurityGroups": [{"GroupId": "sg-1"}], "Tags": [{"Key": "Name", "Value": "db"}]},
  {"InstanceId": "i-mimic", "PrivateIpAddress": "127.9.0.5", "SecurityGroups": [{"GroupId": "sg-1"}], "Tags": [{"Key": "Name", "Value": "i-victim"}]}
]}]}"#;

fn lookalikes(refinement: &str) -> Result<Config, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("instances.json"), LOOKALIKES).expect("write");
    std::fs::write(dir.path().join("groups.json"), GROUPS).expect("write");
    let config = dir.path().join("sgprobe.toml");
    std::fs::write(
        &config,
        format!("[[source]]\nformat = \"aws\"\npath = \"groups.json\"\n[[source]]\nformat = \"aws\"\npath = \"instances.json\"\n{refinement}"),
    )
    .expect("write");
    Config::load(&config, sgprobe::sources::Reading::Strict).map_err(|e| e.to_string())
}

#[test]
fn instances_keep_their_identity_whatever_their_names() {
    let config = lookalikes("").expect("loads");
    let mut ids: Vec<&str> = config
        .inventory
        .instances
        .iter()
        .map(|i| i.id.as_deref().expect("an id"))
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        ["i-a", "i-b", "i-c", "i-mimic", "i-victim"],
        "five instances, none merged"
    );
    let victim = config
        .inventory
        .instance("i-victim")
        .expect("unambiguous")
        .expect("found");
    assert_eq!(
        victim.addresses,
        ["127.9.0.4".parse::<std::net::IpAddr>().expect("ip")]
    );

    // A refinement names its instance by id, or by a name only one instance has.
    let by_id = lookalikes("[[instance]]\nname = \"i-b\"\nports = \"tcp:8080\"\n").expect("loads");
    let b = by_id
        .inventory
        .instance("i-b")
        .expect("one")
        .expect("found");
    assert_eq!(b.ports.len(), 1, "refined");
    assert_eq!(by_id.inventory.instances.len(), 5);
    let error =
        lookalikes("[[instance]]\nname = \"web\"\nports = \"tcp:8080\"\n").expect_err("ambiguous");
    assert!(
        error.contains("\"web\" names 3 instances (i-a, i-b, i-c): name one by its id"),
        "{error}"
    );
}
