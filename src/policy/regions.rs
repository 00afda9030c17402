//! Partitions an address space into regions that every rule treats alike.
//!
//! CIDRs are laminar: two of them are either nested or disjoint. Splitting the space in halves
//! until no CIDR lies strictly inside a piece leaves pieces that each CIDR either covers or
//! misses, so one address per piece stands for all of it. At most (prefix length) splits per
//! CIDR: linear in the number of rules.

use ipnet::IpNet;

/// The regions of `space` as seen by `cidrs`, in address order.
pub fn regions(space: IpNet, cidrs: &[IpNet]) -> Vec<IpNet> {
    let inside: Vec<IpNet> = cidrs
        .iter()
        .copied()
        .filter(|c| c.prefix_len() > space.prefix_len() && space.contains(c))
        .collect();
    let mut out = Vec::new();
    split(space, &inside, &mut out);
    out
}

fn split(net: IpNet, cidrs: &[IpNet], out: &mut Vec<IpNet>) {
    let inside: Vec<IpNet> = cidrs
        .iter()
        .copied()
        .filter(|c| c.prefix_len() > net.prefix_len() && net.contains(c))
        .collect();
    let halves = (!inside.is_empty())
        .then(|| net.subnets(net.prefix_len() + 1).ok())
        .flatten();
    match halves {
        Some(halves) => halves.for_each(|half| split(half, &inside, out)),
        None => out.push(net),
    }
}

/// The whole address space of an address's family.
pub fn space_of(addr: std::net::IpAddr) -> IpNet {
    match addr {
        std::net::IpAddr::V4(_) => "0.0.0.0/0".parse().expect("valid literal"),
        std::net::IpAddr::V6(_) => "::/0".parse().expect("valid literal"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("test literal")
    }

    #[test]
    fn every_cidr_is_a_union_of_regions_and_regions_tile_the_space() {
        let cidrs = [net("10.0.0.0/8"), net("10.1.0.0/16"), net("192.0.2.7/32")];
        let regions = regions(net("0.0.0.0/0"), &cidrs);
        let size = |n: &IpNet| 1u64 << (32 - n.prefix_len());
        assert_eq!(regions.iter().map(size).sum::<u64>(), 1u64 << 32);
        for cidr in cidrs {
            let covered: u64 = regions.iter().filter(|r| cidr.contains(*r)).map(size).sum();
            assert_eq!(covered, size(&cidr), "{cidr}");
            assert!(
                regions
                    .iter()
                    .all(|r| cidr.contains(r) || !r.contains(&cidr) || *r == cidr)
            );
        }
    }

    #[test]
    fn no_cidrs_leave_one_region() {
        assert_eq!(regions(net("::/0"), &[]), vec![net("::/0")]);
    }
}
