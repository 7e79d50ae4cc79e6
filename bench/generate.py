"""Deterministic, seeded IG-shaped data at scale (the shape of tests/data/ig-episodes).

One **episode** is one transaction Bundle of conditional PUTs keyed on business identifiers, with
`urn:uuid:` references between its entries, as a contributor submits it under the Ontario MI IG:

- Patient (MRN of its home hospital, typed `MR`, and an Ontario HCN typed `JHN`, some with the
  `ext-HealthCardVersionCode` extension), keyed on the MRN;
- Organization (a hospital: `Organization.type` v3-RoleCode `HOSP`, UPI), keyed on the UPI and
  shared by every patient of that hospital;
- Practitioner (CPSO licence) for the orderer and the radiologist, keyed on the licence and
  drawn from a pool shared across patients;
- ServiceRequest (accession `ACSN` + placer `PLAC` numbers of the hospital), keyed on accession;
- unless the order is still pending (about 1 in 10): Endpoint (WADO-RS), ImagingStudy (study UID
  and accession, 1-4 series of 1-8 instances, the endpoint) keyed on the study UID, and
  DiagnosticReport keyed on accession, about 1 in 10 `amended`; about 1 in 20 episodes also carry
  an addendum report (its own accession suffix) with `ext-di-addendum-of` pointing at the first.

Patients have 1-5 episodes (about 3 on average); episodes are ordered round by round (every
patient's first episode, then every second one...), so concurrent clients rarely submit two
episodes of one patient at the same moment but keep re-sending the shared Organizations and
Practitioners, as real feeds do.

`flatten` turns the episodes into the unique resources they describe, with stable ids and
resolved references: the NDJSON form, and the documents of the engines'-own-limit measurement.

`python -m bench.generate --seed 1 --patients 100 --out DIR` writes both forms.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

EXAMPLE = "https://example.org/fhir/NamingSystem"
HCN_SYSTEM = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-on-patient-hcn"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
UPI_SYSTEM = f"{EXAMPLE}/ontario-upi"
LICENCE_SYSTEM = f"{EXAMPLE}/cpso-licence"
ENDPOINT_SYSTEM = f"{EXAMPLE}/endpoint"
DICOM_UID = "urn:dicom:uid"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
LOCAL_CODES = "urn:oid:2.16.840.1.113883.3.239.99.1"
EXT = "http://ontariohealth.ca/fhir/StructureDefinition"
ADDENDUM_OF = f"{EXT}/ext-di-addendum-of"
HEALTH_CARD_VERSION = f"{EXT}/ext-HealthCardVersionCode"

# (modality, local code, display, SOP class of its images)
PROCEDURES = (
    ("DX", "XR-CHEST", "XR chest 2 views", "1.2.840.10008.5.1.4.1.1.1.1"),
    ("DX", "XR-HAND-R", "XR right hand", "1.2.840.10008.5.1.4.1.1.1.1"),
    ("CT", "CT-HEAD", "CT head without contrast", "1.2.840.10008.5.1.4.1.1.2"),
    ("CT", "CT-ABD-PEL", "CT abdomen and pelvis with contrast", "1.2.840.10008.5.1.4.1.1.2"),
    ("MR", "MR-KNEE-L", "MRI left knee", "1.2.840.10008.5.1.4.1.1.4"),
    ("MR", "MR-BRAIN", "MRI brain", "1.2.840.10008.5.1.4.1.1.4"),
    ("US", "US-ABD", "US abdomen complete", "1.2.840.10008.5.1.4.1.1.6.1"),
    ("MG", "MG-SCREEN", "Screening mammogram bilateral", "1.2.840.10008.5.1.4.1.1.1.2"),
    ("NM", "NM-BONE", "NM bone scan whole body", "1.2.840.10008.5.1.4.1.1.20"),
)
FAMILY = (
    "Tremblay",
    "Gagnon",
    "Roy",
    "Cote",
    "Bouchard",
    "Gauthier",
    "Morin",
    "Lavoie",
    "Fortin",
    "Smith",
    "Brown",
    "Wilson",
    "Li",
    "Singh",
    "Patel",
    "Nguyen",
    "Martin",
    "Campbell",
    "Chen",
)
GIVEN = (
    "Luc",
    "Marie",
    "Amelia",
    "Noah",
    "Olivia",
    "Liam",
    "Emma",
    "Aarav",
    "Mei",
    "Jack",
    "Chloe",
    "Ethan",
    "Zoe",
    "Arjun",
    "Sofia",
    "Lucas",
    "Maya",
    "Owen",
    "Leah",
    "Ravi",
)
CONCLUSIONS = (
    "No acute findings.",
    "Mild degenerative change. No fracture.",
    "Findings consistent with prior study; no interval change.",
    "Small effusion. Recommend clinical correlation.",
    "Incidental 4 mm nodule; follow-up imaging in 12 months.",
)


def _typed(system: str, value: str, code: str) -> dict[str, Any]:
    return {
        "system": system,
        "value": value,
        "type": {"coding": [{"system": V2_0203, "code": code}]},
    }


def _put(type_: str, system: str, value: str) -> dict[str, str]:
    return {"method": "PUT", "url": f"{type_}?identifier={system}|{value}"}


@dataclass(frozen=True)
class Hospital:
    code: str
    upi: str
    name: str

    @property
    def mrn_system(self) -> str:
        return f"{EXAMPLE}/hospital-{self.code}-mrn"

    @property
    def accession_system(self) -> str:
        return f"{EXAMPLE}/hospital-{self.code}-accession"

    @property
    def placer_system(self) -> str:
        return f"{EXAMPLE}/hospital-{self.code}-placer"

    def resource(self) -> dict[str, Any]:
        return {
            "resourceType": "Organization",
            "identifier": [{"system": UPI_SYSTEM, "value": self.upi}],
            "active": True,
            "type": [{"coding": [{"system": ROLE_CODE, "code": "HOSP", "display": "Hospital"}]}],
            "name": self.name,
        }


@dataclass(frozen=True)
class PatientKey:
    """How a viewer names the patient: `mrn` and `hcn` are `system|value` tokens."""

    mrn: str
    hcn: str


@dataclass(frozen=True)
class Episode:
    bundle: dict[str, Any]
    patient: PatientKey
    issued: str | None  # the DiagnosticReport's `issued` (None: order only)

    @property
    def resources(self) -> int:
        return len(self.bundle["entry"])


@dataclass(frozen=True)
class Dataset:
    seed: int
    episodes: list[Episode]
    patients: list[PatientKey]

    @property
    def resources(self) -> int:
        return sum(e.resources for e in self.episodes)


class _Ids:
    """Deterministic urn:uuid fullUrls from the generator's random stream."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def urn(self) -> str:
        return f"urn:uuid:{uuid.UUID(int=self._rng.getrandbits(128), version=4)}"


def _practitioner(licence: str, family: str, given: str) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "identifier": [_typed(LICENCE_SYSTEM, licence, "LN")],
        "name": [{"family": family, "given": [given], "prefix": ["Dr"]}],
    }


def _timestamp(rng: random.Random, year_from: int = 2015, year_to: int = 2024) -> tuple[int, ...]:
    return (
        rng.randint(year_from, year_to),
        rng.randint(1, 12),
        rng.randint(1, 28),
        rng.randint(7, 14),
        rng.choice((0, 15, 30, 45)),
    )


def _at(t: tuple[int, ...], plus_hours: int = 0) -> str:
    y, mo, d, h, mi = t
    return f"{y:04d}-{mo:02d}-{d:02d}T{h + plus_hours:02d}:{mi:02d}:00-05:00"


def generate(seed: int, patients: int, max_episodes: int = 5) -> Dataset:
    """`patients` patients with 1..`max_episodes` episodes each (about 3 on average), as Bundles."""
    rng = random.Random(seed)
    ids = _Ids(rng)
    n_hospitals = max(3, min(40, patients // 250))
    hospitals = [
        Hospital(f"{chr(97 + k % 26)}{k // 26 or ''}", f"UPI{100 + k}", f"Hospital {k + 1}")
        for k in range(n_hospitals)
    ]
    licence_base = rng.randrange(10_000, 50_000)
    practitioners = [
        _practitioner(str(licence_base + k), rng.choice(FAMILY), rng.choice(GIVEN))
        for k in range(max(8, min(2000, patients // 20)))
    ]
    mrn_base = rng.randrange(1_000_000, 5_000_000)
    hcn_base = rng.randrange(1_000_000_000, 8_000_000_000)
    people: list[tuple[PatientKey, dict[str, Any], Hospital, int]] = []
    for i in range(patients):
        hospital = hospitals[rng.randrange(n_hospitals)]
        mrn, hcn = f"MRN{mrn_base + i}", str(hcn_base + i * 7)
        hcn_id = _typed(HCN_SYSTEM, hcn, "JHN")
        if rng.random() < 0.5:
            hcn_id["extension"] = [
                {"url": HEALTH_CARD_VERSION, "valueString": rng.choice(("AB", "XY", "K"))}
            ]
        patient = {
            "resourceType": "Patient",
            "identifier": [_typed(hospital.mrn_system, mrn, "MR"), hcn_id],
            "name": [{"family": rng.choice(FAMILY), "given": [rng.choice(GIVEN)]}],
            "gender": rng.choice(("female", "male")),
            "birthDate": f"{rng.randint(1930, 2020)}-{rng.randint(1, 12):02d}-"
            f"{rng.randint(1, 28):02d}",
        }
        count = min(max_episodes, 1 + int(rng.expovariate(0.5)))
        people.append(
            (
                PatientKey(f"{hospital.mrn_system}|{mrn}", f"{HCN_SYSTEM}|{hcn}"),
                patient,
                hospital,
                count,
            )
        )
    episodes: list[Episode] = []
    accession = rng.randrange(100_000_000, 800_000_000)
    for round_ in range(max_episodes):
        for key, patient, hospital, count in people:
            if round_ < count:
                accession += 1
                episodes.append(
                    _episode(rng, ids, key, patient, hospital, practitioners, accession)
                )
    return Dataset(seed, episodes, [p[0] for p in people])


def _episode(
    rng: random.Random,
    ids: _Ids,
    key: PatientKey,
    patient: dict[str, Any],
    hospital: Hospital,
    practitioners: list[dict[str, Any]],
    number: int,
) -> Episode:
    modality, code, display, sop_class = PROCEDURES[rng.randrange(len(PROCEDURES))]
    when = _timestamp(rng)
    acc = f"ACC{number}"
    mrn_system, mrn = key.mrn.split("|", 1)
    p_urn, o_urn, sr_urn = ids.urn(), ids.urn(), ids.urn()
    orderer = practitioners[rng.randrange(len(practitioners))]
    reader = practitioners[rng.randrange(len(practitioners))]
    entries: list[dict[str, Any]] = [
        {"fullUrl": p_urn, "resource": patient, "request": _put("Patient", mrn_system, mrn)},
        {
            "fullUrl": o_urn,
            "resource": hospital.resource(),
            "request": _put("Organization", UPI_SYSTEM, hospital.upi),
        },
    ]
    by_licence: dict[str, str] = {}
    for person in (orderer, reader):
        licence = person["identifier"][0]["value"]
        if licence not in by_licence:
            by_licence[licence] = ids.urn()
            entries.append(
                {
                    "fullUrl": by_licence[licence],
                    "resource": person,
                    "request": _put("Practitioner", LICENCE_SYSTEM, licence),
                }
            )
    concept = {"coding": [{"system": LOCAL_CODES, "code": code, "display": display}]}
    pending = rng.random() < 0.1
    order = {
        "resourceType": "ServiceRequest",
        "status": "active" if pending else "completed",
        "intent": "order",
        "identifier": [
            _typed(hospital.accession_system, acc, "ACSN"),
            _typed(hospital.placer_system, f"PL{number}", "PLAC"),
        ],
        "category": [{"coding": [{"system": DCM, "code": modality}]}],
        "code": concept,
        "subject": {"reference": p_urn},
        "authoredOn": _at(when),
        "requester": {"reference": by_licence[orderer["identifier"][0]["value"]]},
        "performer": [{"reference": o_urn}],
    }
    entries.append(
        {
            "fullUrl": sr_urn,
            "resource": order,
            "request": _put("ServiceRequest", hospital.accession_system, acc),
        }
    )
    if pending:
        return Episode(
            {"resourceType": "Bundle", "type": "transaction", "entry": entries}, key, None
        )
    ep_urn, is_urn, dr_urn = ids.urn(), ids.urn(), ids.urn()
    study_uid = f"1.2.840.99.{number}"
    series: list[dict[str, Any]] = []
    for s in range(1, rng.randint(1, 4) + 1):
        instances = [
            {
                "uid": f"{study_uid}.{s}.{k}",
                "number": k,
                "sopClass": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{sop_class}"},
            }
            for k in range(1, rng.randint(1, 8) + 1)
        ]
        series.append(
            {
                "uid": f"{study_uid}.{s}",
                "number": s,
                "modality": {"system": DCM, "code": modality},
                "numberOfInstances": len(instances),
                "instance": instances,
            }
        )
    endpoint = {
        "resourceType": "Endpoint",
        "status": "active",
        "identifier": [{"system": ENDPOINT_SYSTEM, "value": f"EP{number}"}],
        "managingOrganization": {"reference": o_urn},
        "connectionType": {
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
            "code": "dicom-wado-rs",
        },
        "payloadType": [{"text": "DICOM"}],
        "address": f"https://pacs-{hospital.code}.example.org/wado/{number}",
    }
    study = {
        "resourceType": "ImagingStudy",
        "status": "available",
        "identifier": [
            {"system": DICOM_UID, "value": f"urn:oid:{study_uid}"},
            _typed(hospital.accession_system, acc, "ACSN"),
        ],
        "subject": {"reference": p_urn},
        "basedOn": [{"reference": sr_urn}],
        "started": _at(when, 1),
        "endpoint": [{"reference": ep_urn}],
        "modality": [{"system": DCM, "code": modality}],
        "numberOfSeries": len(series),
        "numberOfInstances": sum(len(s["instance"]) for s in series),
        "series": series,
    }
    amended = rng.random() < 0.1
    issued = _at(when, 6)
    report = {
        "resourceType": "DiagnosticReport",
        "status": "amended" if amended else "final",
        "identifier": [_typed(hospital.accession_system, acc, "ACSN")],
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD"}]}
        ],
        "code": concept,
        "subject": {"reference": p_urn},
        "basedOn": [{"reference": sr_urn}],
        "imagingStudy": [{"reference": is_urn}],
        "issued": issued,
        "effectiveDateTime": _at(when, 1),
        "performer": [{"reference": o_urn}],
        "resultsInterpreter": [{"reference": by_licence[reader["identifier"][0]["value"]]}],
        "conclusion": rng.choice(CONCLUSIONS)
        + (" Amended: laterality corrected." if amended else ""),
    }
    entries += [
        {
            "fullUrl": ep_urn,
            "resource": endpoint,
            "request": _put("Endpoint", ENDPOINT_SYSTEM, f"EP{number}"),
        },
        {
            "fullUrl": is_urn,
            "resource": study,
            "request": _put("ImagingStudy", DICOM_UID, f"urn:oid:{study_uid}"),
        },
        {
            "fullUrl": dr_urn,
            "resource": report,
            "request": _put("DiagnosticReport", hospital.accession_system, acc),
        },
    ]
    if rng.random() < 0.05:
        add_acc = f"{acc}-A1"
        addendum = {
            **report,
            "status": "final",
            "identifier": [_typed(hospital.accession_system, add_acc, "ACSN")],
            "extension": [{"url": ADDENDUM_OF, "valueReference": {"reference": dr_urn}}],
            "issued": _at(when, 9),
            "conclusion": "Addendum: comparison with outside study reviewed; no change.",
        }
        entries.append(
            {
                "fullUrl": ids.urn(),
                "resource": addendum,
                "request": _put("DiagnosticReport", hospital.accession_system, add_acc),
            }
        )
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    return Episode(bundle, key, issued)


# -- flat form: unique resources, stable ids, resolved references ----------------------------


def stable_id(request_url: str) -> str:
    """A FHIR id for the resource a conditional PUT names (its type and business identifier)."""
    return hashlib.sha256(request_url.encode()).hexdigest()[:32]


def _rewrite(value: Any, refs: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            k: (refs.get(v, v) if k == "reference" and isinstance(v, str) else _rewrite(v, refs))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rewrite(v, refs) for v in value]
    return value


def flatten(
    dataset: Dataset, last_updated: str = "2025-01-01T00:00:00Z", unique: bool = True
) -> list[dict[str, Any]]:
    """The resources the episodes describe, each with a stable `id`, `meta` and its `urn:uuid:`
    references rewritten to `Type/id`. `unique`: one per business identifier (a later episode's
    copy wins, as on the server), in order of first appearance; else one per Bundle entry (the
    shared Patient, Organization and Practitioners repeated under per-episode ids), the same
    volume the API is sent."""
    out: dict[str, dict[str, Any]] = {}
    for n, episode in enumerate(dataset.episodes):
        refs: dict[str, str] = {}
        for entry in episode.bundle["entry"]:
            type_ = entry["resource"]["resourceType"]
            key = entry["request"]["url"] if unique else f"{n}:{entry['request']['url']}"
            refs[entry["fullUrl"]] = f"{type_}/{stable_id(key)}"
        for entry in episode.bundle["entry"]:
            ref = refs[entry["fullUrl"]]
            type_, id_ = ref.split("/")
            resource = _rewrite(entry["resource"], refs)
            out[ref] = {
                "resourceType": type_,
                "id": id_,
                "meta": {"versionId": "1", "lastUpdated": last_updated},
                **{k: v for k, v in resource.items() if k != "resourceType"},
            }
    return list(out.values())


def ndjson_lines(resources: list[dict[str, Any]]) -> Iterator[tuple[str, bytes]]:
    for resource in resources:
        yield resource["resourceType"], orjson.dumps(resource)


def write(dataset: Dataset, folder: Path) -> tuple[Path, Path]:
    """Bundles as `bundles/episode-NNNNNN.json` and NDJSON as `ndjson/<Type>.ndjson`."""
    bundles, ndjson = folder / "bundles", folder / "ndjson"
    bundles.mkdir(parents=True, exist_ok=True)
    ndjson.mkdir(parents=True, exist_ok=True)
    for n, episode in enumerate(dataset.episodes, 1):
        (bundles / f"episode-{n:06d}.json").write_bytes(
            orjson.dumps(episode.bundle, option=orjson.OPT_INDENT_2)
        )
    files: dict[str, list[bytes]] = {}
    for type_, line in ndjson_lines(flatten(dataset)):
        files.setdefault(type_, []).append(line)
    for type_, lines in files.items():
        (ndjson / f"{type_}.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    return bundles, ndjson


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("bench-data"))
    args = parser.parse_args(argv)
    dataset = generate(args.seed, args.patients)
    bundles, ndjson = write(dataset, args.out)
    print(
        f"{len(dataset.episodes)} episodes ({dataset.resources} entries) in {bundles}; "
        f"NDJSON in {ndjson}"
    )


if __name__ == "__main__":
    main()
