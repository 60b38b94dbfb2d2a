//! The authentication matrix (right, wrong, missing, not configured) per endpoint, known HMAC
//! vectors, and secrets never shown.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

const TOKEN: &str = "Hx3Q9vTzY2mLw8Rb4Kd7Nf1Pj6Sg0Ac5";

fn headers(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_string()))
        .collect();
    move |name: &str| map.get(name).cloned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

#[test]
fn hmac_signatures_match_known_vectors() {
    // RFC 4231, test case 2.
    assert_eq!(
        sign(b"Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // GitHub's "Validating webhook deliveries" example.
    let github = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(
        sign(b"It's a Secret to Everybody", b"Hello, World!"),
        github
    );
    assert_eq!(
        authenticate(
            Endpoint::GitHub,
            &[Credential::Hmac(b"It's a Secret to Everybody")],
            &headers(&[("X-Hub-Signature-256", github)]),
            None,
            b"Hello, World!",
        ),
        Ok(())
    );
    assert_eq!(
        authenticate(
            Endpoint::Generic,
            &[Credential::Hmac(b"Jefe")],
            &headers(&[(
                "X-Signature-256",
                "sha256=5BDCC146BF60754E6A042426089575C75A003F089D2739839DEC58B964EC3843"
            )]),
            None,
            b"what do ya want for nothing?",
        ),
        Ok(())
    );
}

/// For each endpoint: its credential, the headers / path token that present it rightly and wrongly.
struct AuthCase {
    endpoint: Endpoint,
    credential: Credential<'static>,
    right: Vec<(&'static str, String)>,
    wrong: Vec<(&'static str, String)>,
    right_path: Option<&'static str>,
    wrong_path: Option<&'static str>,
}

const BODY: &[u8] = br#"{"image": "registry.example.com/acme/app"}"#;
const SECRET: &[u8] = b"hook-secret-for-tests";

fn auth_cases() -> Vec<AuthCase> {
    let bearer = |endpoint| AuthCase {
        endpoint,
        credential: Credential::Bearer(TOKEN),
        right: vec![("Authorization", format!("Bearer {TOKEN}"))],
        wrong: vec![("Authorization", format!("Bearer {TOKEN}x"))],
        right_path: None,
        wrong_path: None,
    };
    let hmac = |endpoint, header| AuthCase {
        endpoint,
        credential: Credential::Hmac(SECRET),
        right: vec![(header, sign(SECRET, BODY))],
        wrong: vec![(header, sign(b"another-secret", BODY))],
        right_path: None,
        wrong_path: None,
    };
    let path = |endpoint| AuthCase {
        endpoint,
        credential: Credential::PathToken(TOKEN),
        right: vec![],
        wrong: vec![],
        right_path: Some(TOKEN),
        wrong_path: Some("Hx3Q9vTzY2mLw8Rb4Kd7Nf1Pj6Sg0Ac"),
    };
    vec![
        bearer(Endpoint::Distribution),
        path(Endpoint::DockerHub),
        hmac(Endpoint::GitHub, "X-Hub-Signature-256"),
        AuthCase {
            right: vec![("Authorization", TOKEN.to_string())],
            ..bearer(Endpoint::Harbor)
        },
        path(Endpoint::Quay),
        bearer(Endpoint::Acr),
        bearer(Endpoint::Generic),
        hmac(Endpoint::Generic, "X-Signature-256"),
    ]
}

fn run(
    case: &AuthCase,
    pairs: &[(&'static str, String)],
    path: Option<&str>,
) -> Result<(), AuthError> {
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    authenticate(
        case.endpoint,
        &[case.credential],
        &headers(&pairs),
        path,
        BODY,
    )
}

#[test]
fn authentication_matrix_right_wrong_missing_not_configured() {
    for case in auth_cases() {
        let endpoint = case.endpoint;
        assert_eq!(
            run(&case, &case.right, case.right_path),
            Ok(()),
            "{endpoint} right"
        );
        assert_eq!(
            run(&case, &case.wrong, case.wrong_path),
            Err(AuthError::Wrong { endpoint }),
            "{endpoint} wrong"
        );
        assert_eq!(
            run(&case, &[], None),
            Err(AuthError::Missing { endpoint }),
            "{endpoint} missing"
        );
        let not_configured = authenticate(
            endpoint,
            &[],
            &headers(&[("Authorization", &format!("Bearer {TOKEN}"))]),
            Some(TOKEN),
            BODY,
        );
        assert_eq!(not_configured, Err(AuthError::NotConfigured { endpoint }));
        assert_eq!(not_configured.unwrap_err().http_status(), 404);
        assert_eq!(AuthError::Wrong { endpoint }.http_status(), 401);
        assert_eq!(AuthError::Missing { endpoint }.http_status(), 401);
    }
}

#[test]
fn a_signature_over_another_body_or_in_another_form_is_wrong() {
    let github = |value: &str, body: &[u8]| {
        authenticate(
            Endpoint::GitHub,
            &[Credential::Hmac(SECRET)],
            &headers(&[("X-Hub-Signature-256", value)]),
            None,
            body,
        )
    };
    let right = sign(SECRET, BODY);
    assert_eq!(github(&right, BODY), Ok(()));
    let wrong = Err(AuthError::Wrong {
        endpoint: Endpoint::GitHub,
    });
    assert_eq!(github(&right, b"{}"), wrong);
    assert_eq!(github(right.trim_start_matches("sha256="), BODY), wrong);
    assert_eq!(github(&right.replace("sha256=", "sha1="), BODY), wrong);
    assert_eq!(github(&right[..right.len() - 1], BODY), wrong);
    assert_eq!(github(&right[..right.len() - 2], BODY), wrong);
    assert_eq!(github(&format!("{right}00"), BODY), wrong);
    assert_eq!(github("sha256=zz", BODY), wrong);
    assert_eq!(github("", BODY), wrong);
}

#[test]
fn bearer_scheme_is_case_insensitive_and_other_schemes_are_wrong() {
    let distribution = |value: &str| {
        authenticate(
            Endpoint::Distribution,
            &[Credential::Bearer(TOKEN)],
            &headers(&[("Authorization", value)]),
            None,
            BODY,
        )
    };
    assert_eq!(distribution(&format!("bearer {TOKEN}")), Ok(()));
    assert_eq!(distribution(&format!("BEARER  {TOKEN}")), Ok(()));
    let wrong = Err(AuthError::Wrong {
        endpoint: Endpoint::Distribution,
    });
    assert_eq!(
        distribution(TOKEN),
        wrong,
        "only Harbor sends the bare value"
    );
    assert_eq!(distribution(&format!("Basic {TOKEN}")), wrong);
    assert_eq!(distribution("Bearer"), wrong);
    assert_eq!(distribution("Bearer "), wrong);
    // Harbor: the configured header value verbatim, or the same as a bearer token.
    let harbor = |value: &str| {
        authenticate(
            Endpoint::Harbor,
            &[Credential::Bearer(TOKEN)],
            &headers(&[("Authorization", value)]),
            None,
            BODY,
        )
    };
    assert_eq!(harbor(TOKEN), Ok(()));
    assert_eq!(harbor(&format!("Bearer {TOKEN}")), Ok(()));
    assert_eq!(
        harbor(&format!("{TOKEN} ")),
        Err(AuthError::Wrong {
            endpoint: Endpoint::Harbor
        })
    );
}

#[test]
fn generic_accepts_either_configured_credential() {
    let both = [Credential::Bearer(TOKEN), Credential::Hmac(SECRET)];
    let generic = |pairs: &[(&str, &str)]| {
        authenticate(Endpoint::Generic, &both, &headers(pairs), None, BODY)
    };
    let signature = sign(SECRET, BODY);
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(generic(&[("Authorization", &bearer)]), Ok(()));
    assert_eq!(generic(&[("X-Signature-256", &signature)]), Ok(()));
    assert_eq!(
        generic(&[
            ("Authorization", "Bearer nope"),
            ("X-Signature-256", &signature)
        ]),
        Ok(())
    );
    assert_eq!(
        generic(&[("Authorization", "Bearer nope")]),
        Err(AuthError::Wrong {
            endpoint: Endpoint::Generic
        })
    );
    assert_eq!(
        generic(&[]),
        Err(AuthError::Missing {
            endpoint: Endpoint::Generic
        })
    );
}

#[test]
fn empty_or_inapplicable_credentials_leave_the_endpoint_off() {
    let any = headers(&[
        ("Authorization", "Bearer "),
        ("X-Hub-Signature-256", "sha256="),
    ]);
    for (endpoint, credentials) in [
        (Endpoint::Distribution, vec![Credential::Bearer("")]),
        (Endpoint::Distribution, vec![Credential::Hmac(SECRET)]),
        (
            Endpoint::GitHub,
            vec![Credential::Bearer(TOKEN), Credential::Hmac(b"")],
        ),
        (Endpoint::DockerHub, vec![Credential::Bearer(TOKEN)]),
        (Endpoint::Quay, vec![Credential::PathToken("")]),
        (Endpoint::Acr, vec![Credential::PathToken(TOKEN)]),
    ] {
        assert_eq!(
            authenticate(endpoint, &credentials, &any, Some(""), b""),
            Err(AuthError::NotConfigured { endpoint }),
            "{endpoint} {credentials:?}"
        );
    }
}

#[test]
fn credentials_and_auth_errors_never_show_the_secret() {
    for credential in [
        Credential::Bearer(TOKEN),
        Credential::Hmac(TOKEN.as_bytes()),
        Credential::PathToken(TOKEN),
    ] {
        assert!(!format!("{credential:?}").contains(TOKEN));
    }
    for case in auth_cases() {
        for result in [
            run(&case, &case.wrong, case.wrong_path),
            run(&case, &[], None),
        ] {
            let error = result.unwrap_err();
            assert!(!error.to_string().contains(TOKEN));
            assert!(!format!("{error:?}").contains(TOKEN));
            assert_eq!(error.class(), ErrorClass::Permanent);
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_credentials_are_never_accepted(value in "\\PC{0,80}", path in "\\PC{0,40}") {
        let all = headers(&[
            ("Authorization", value.as_str()),
            ("X-Hub-Signature-256", value.as_str()),
            ("X-Signature-256", value.as_str()),
        ]);
        for case in auth_cases() {
            prop_assert!(authenticate(case.endpoint, &[case.credential], &all, Some(&path), BODY).is_err());
        }
    }
}
