#!/usr/bin/env bash
# A recorded account of 1,000 instances and 200 groups (10 rules each), read as the agent
# reads live rules: two command sources whose output is the AWS CLI's. Prints the load's
# wall time and peak memory (GNU time), and what the sources gave.
#   bench/account.sh [INSTANCES] [GROUPS]
set -euo pipefail
cd "$(dirname "$0")/.."
instances=${1:-1000}
groups=${2:-200}
[ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
cargo build --release --locked
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 - "$dir" "$instances" "$groups" <<'PY'
import json, sys
out, instances, groups = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sgs = [{"GroupId": f"sg-{g:08x}", "GroupName": f"group-{g}",
        "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 1000 + r, "ToPort": 1000 + r,
                           "IpRanges": [{"CidrIp": f"10.{g % 250}.{r}.0/24"}]} for r in range(8)]
                         + [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                             "UserIdGroupPairs": [{"GroupId": f"sg-{(g + 1) % groups:08x}"}]}],
        "IpPermissionsEgress": [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]}
       for g in range(groups)]
json.dump({"SecurityGroups": sgs}, open(f"{out}/groups.json", "w"))
reservations = [{"Instances": [{"InstanceId": f"i-{i:08x}", "SubnetId": "subnet-1",
    "PrivateIpAddress": f"10.77.{i // 250}.{i % 250 + 1}",
    "SecurityGroups": [{"GroupId": f"sg-{i % groups:08x}"}, {"GroupId": f"sg-{(i * 7) % groups:08x}"}],
    "Tags": [{"Key": "Name", "Value": f"vm-{i}"}, {"Key": "team", "Value": "web" if i % 2 else "db"}]}]}
    for i in range(instances)]
json.dump({"Reservations": reservations}, open(f"{out}/instances.json", "w"))
PY
cat > "$dir/sgprobe.toml" <<TOML
[[source]]
name = "aws-groups"
format = "aws"
command = ["cat", "$dir/groups.json"]

[[source]]
name = "aws-instances"
format = "aws"
command = ["cat", "$dir/instances.json"]
TOML
ls -l "$dir"/*.json | awk '{print $5, $9}'
/usr/bin/time -f "load and evaluate one instance: %e s wall, %M KiB peak RSS" \
    target/release/sgprobe eval -c "$dir/sgprobe.toml" -i vm-1 --ports tcp:22 >/dev/null
/usr/bin/time -f "load and evaluate every instance (TCP 22): %e s wall, %M KiB peak RSS" \
    target/release/sgprobe eval -c "$dir/sgprobe.toml" --ports tcp:22 --json >/dev/null
