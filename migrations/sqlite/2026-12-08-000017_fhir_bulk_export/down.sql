DROP TABLE fhir_export_parts;
DROP TABLE fhir_exports;
