"""A custom SearchParameter the tests register (Patient.maritalStatus as the token `marital`)."""

MARITAL = {
    "resourceType": "SearchParameter",
    "id": "marital",
    "url": "https://example.org/fhir/SearchParameter/patient-marital",
    "name": "marital",
    "status": "active",
    "code": "marital",
    "base": ["Patient"],
    "type": "token",
    "expression": "Patient.maritalStatus",
}
