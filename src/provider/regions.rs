//! Where a cloud region is: the ISO 3166-1 country of AWS and Google Cloud regions, so a
//! provider's `region` gives its jurisdiction without the operator restating it. A region not
//! listed (a new one, a multi-region such as Vertex's `global` or `eu`) has none: it is never
//! inside a residency tier until the config says where it is.

/// AWS regions (Bedrock) and their countries.
const AWS: &[(&str, &str)] = &[
    ("us-east-1", "US"),
    ("us-east-2", "US"),
    ("us-west-1", "US"),
    ("us-west-2", "US"),
    ("us-gov-east-1", "US"),
    ("us-gov-west-1", "US"),
    ("ca-central-1", "CA"),
    ("ca-west-1", "CA"),
    ("mx-central-1", "MX"),
    ("sa-east-1", "BR"),
    ("eu-central-1", "DE"),
    ("eu-central-2", "CH"),
    ("eu-west-1", "IE"),
    ("eu-west-2", "GB"),
    ("eu-west-3", "FR"),
    ("eu-north-1", "SE"),
    ("eu-south-1", "IT"),
    ("eu-south-2", "ES"),
    ("il-central-1", "IL"),
    ("me-central-1", "AE"),
    ("me-south-1", "BH"),
    ("af-south-1", "ZA"),
    ("ap-east-1", "HK"),
    ("ap-east-2", "TW"),
    ("ap-northeast-1", "JP"),
    ("ap-northeast-2", "KR"),
    ("ap-northeast-3", "JP"),
    ("ap-south-1", "IN"),
    ("ap-south-2", "IN"),
    ("ap-southeast-1", "SG"),
    ("ap-southeast-2", "AU"),
    ("ap-southeast-3", "ID"),
    ("ap-southeast-4", "AU"),
    ("ap-southeast-5", "MY"),
    ("ap-southeast-7", "TH"),
];

/// Google Cloud locations (Vertex AI) and their countries. `us` is a multi-region inside one
/// country; `global` and `eu` span several and are not listed.
const GOOGLE: &[(&str, &str)] = &[
    ("us", "US"),
    ("us-central1", "US"),
    ("us-east1", "US"),
    ("us-east4", "US"),
    ("us-east5", "US"),
    ("us-south1", "US"),
    ("us-west1", "US"),
    ("us-west2", "US"),
    ("us-west3", "US"),
    ("us-west4", "US"),
    ("northamerica-northeast1", "CA"),
    ("northamerica-northeast2", "CA"),
    ("northamerica-south1", "MX"),
    ("southamerica-east1", "BR"),
    ("southamerica-west1", "CL"),
    ("europe-west1", "BE"),
    ("europe-west2", "GB"),
    ("europe-west3", "DE"),
    ("europe-west4", "NL"),
    ("europe-west6", "CH"),
    ("europe-west8", "IT"),
    ("europe-west9", "FR"),
    ("europe-west10", "DE"),
    ("europe-west12", "IT"),
    ("europe-north1", "FI"),
    ("europe-north2", "SE"),
    ("europe-central2", "PL"),
    ("europe-southwest1", "ES"),
    ("me-central1", "QA"),
    ("me-central2", "SA"),
    ("me-west1", "IL"),
    ("africa-south1", "ZA"),
    ("asia-east1", "TW"),
    ("asia-east2", "HK"),
    ("asia-northeast1", "JP"),
    ("asia-northeast2", "JP"),
    ("asia-northeast3", "KR"),
    ("asia-south1", "IN"),
    ("asia-south2", "IN"),
    ("asia-southeast1", "SG"),
    ("asia-southeast2", "ID"),
    ("australia-southeast1", "AU"),
    ("australia-southeast2", "AU"),
];

/// The country of an AWS region.
pub fn aws_country(region: &str) -> Option<&'static str> {
    lookup(AWS, region)
}

/// The country of a Google Cloud location.
pub fn google_country(location: &str) -> Option<&'static str> {
    lookup(GOOGLE, location)
}

fn lookup(table: &[(&str, &'static str)], key: &str) -> Option<&'static str> {
    table.iter().find(|(r, _)| *r == key).map(|(_, c)| *c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_name_their_country() {
        assert_eq!(aws_country("ca-central-1"), Some("CA"));
        assert_eq!(aws_country("eu-central-1"), Some("DE"));
        assert_eq!(aws_country("moon-1"), None);
        assert_eq!(google_country("northamerica-northeast1"), Some("CA"));
        assert_eq!(google_country("europe-west4"), Some("NL"));
        assert_eq!(google_country("us"), Some("US"));
        // Spanning several countries: no one jurisdiction.
        assert_eq!(google_country("global"), None);
        assert_eq!(google_country("eu"), None);
        // Every code is a jurisdiction the tiers accept.
        for (_, c) in AWS.iter().chain(GOOGLE) {
            assert!(crate::routing::tier::is_jurisdiction(c), "{c}");
        }
    }
}
