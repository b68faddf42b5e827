-- The CR8TOR demo dataset (schemas clinical and reference), for the compose stack's source database.
-- Generated from tools/demo_data.ts by deploy/compose/write_demo_sql.ts; do not edit.
\set ON_ERROR_STOP on

drop schema if exists clinical cascade;

drop schema if exists reference cascade;

create schema reference;

comment on schema reference is 'Lookup tables shared by the synthetic clinical dataset';

create table reference.wards (
     ward_code varchar(10) primary key,
     ward_name text not null,
     specialty varchar(60),
     beds smallint not null,
     opened_on date,
     teaching boolean
   );

comment on table reference.wards is 'Hospital wards; admissions.ward refers to ward_code';

comment on column reference.wards.opened_on is 'Date the ward opened; NULL when not recorded';

insert into reference.wards values
     ('CARD', 'Cardiology, Ward 3', 'Cardiology', 28, '1948-07-05', true),
     ('ONC', 'Oncology "Rosewood" Unit', 'Oncology', 24, '1962-11-01', true),
     ('RESP', 'Respiratory', 'Respiratory medicine', 30, '1971-04-19', false),
     ('MAT', 'Maternity – Ward 7', 'Obstetrics', 32, '1955-02-28', true),
     ('AE', E'Accident & Emergency\nObservation', 'Emergency medicine', 16, '1999-12-31', false),
     ('GERI', 'Care of the Elderly (Gofal yr Henoed)', '', 22, null, false),
     ('PAED', 'Children''s Ward 🧸', 'Paediatrics', 18, '1969-07-20', null);

create table reference.lab_tests (
     test_code varchar(12) primary key,
     test_name text not null,
     unit varchar(20) not null,
     low numeric(10,3),
     high numeric(10,3),
     loinc_code varchar(10)
   );

comment on table reference.lab_tests is 'Laboratory tests with their reference ranges';

comment on column reference.lab_tests.low is 'Lower limit of the reference range, inclusive';

comment on column reference.lab_tests.high is 'Upper limit of the reference range, inclusive';

insert into reference.lab_tests values
     ('HB', 'Haemoglobin', 'g/L', 115, 165, '718-7'),
     ('WBC', 'White cell count', '10⁹/L', 4, 11, '6690-2'),
     ('NA', 'Sodium', 'mmol/L', 133, 146, '2951-2'),
     ('K', 'Potassium', 'mmol/L', 3.5, 5.3, '2823-3'),
     ('CREA', 'Creatinine', 'µmol/L', 45, 110, '2160-0'),
     ('CRP', 'C-reactive protein', 'mg/L', 0, 5, '1988-5'),
     ('HBA1C', 'HbA1c (IFCC)', 'mmol/mol', 20, 41, null);

create schema clinical;

comment on schema clinical is 'Synthetic clinical research dataset (CR8TOR demo; no real people)';

create table clinical.patients (
     patient_id bigint primary key,
     pseudo_id uuid not null unique,
     nhs_number varchar(10) not null,
     given_name varchar(60) not null,
     family_name text not null,
     sex char(1),
     birth_date date not null,
     deceased boolean,
     weight_kg numeric(5,1),
     height_m double precision,
     registered_at timestamptz not null,
     notes text
   );

comment on table clinical.patients is 'One row per patient';

comment on column clinical.patients.pseudo_id is 'Pseudonymous identifier, stable across extracts';

comment on column clinical.patients.nhs_number is 'NHS number from the 999 test range (synthetic)';

comment on column clinical.patients.sex is 'F, M, or NULL when not recorded';

comment on column clinical.patients.weight_kg is 'Weight at registration, kilograms';

comment on column clinical.patients.height_m is 'Height at registration, metres';

comment on column clinical.patients.notes is 'Free text; NULL when absent, empty when blank';

insert into clinical.patients
   select g,
          md5('cr8tor-demo-patient-' || g)::uuid,
          '999' || lpad(((g::bigint * 7919) % 10000000)::text, 7, '0'),
          (array['Ada', 'Zoë', 'José', 'Siobhán', 'Łukasz', 'Amara', 'Nguyễn Văn', 'Søren', 'Chloé',
                 'Mohammed', 'Aoife', 'Kwame'])[1 + g % 12],
          (array['Lovelace', 'O''Brien', 'Müller', 'Nakamura', 'Okafor', 'Ó Súilleabháin',
                 'Smith-Jones', 'García Márquez', 'Østergaard', '李', 'Kowalczyk', 'Patel'])[1 + (g * 7) % 12],
          case when g % 41 = 0 then null when g % 2 = 0 then 'F' else 'M' end,
          date '1920-01-01' + (('x' || substr(md5('cr8tor-demo-born-' || g), 1, 8))::bit(32)::bigint % 31000)::int,
          case when g % 97 = 0 then null else g % 29 = 0 end,
          case when g % 17 = 0 then null else round(40 + ((g::bigint * 48271) % 800) / 10.0, 1) end,
          case when g % 19 = 0 then null else 1.45::float8 + ((g * 31) % 55)::float8 / 100 end,
          timestamptz '2010-01-01 00:00:00+00'
            + ((g::bigint * 987654321) % 473040000) * interval '1 second'
            + ((g::bigint * 7919) % 1000000) * interval '1 microsecond',
          case g % 12
            when 0 then null
            when 1 then ''
            when 2 then 'Allergic to penicillin, "severe" rash'
            when 3 then E'Referred by GP.\nFollow-up in 6 weeks.'
            when 4 then 'Prefers Welsh: "Bore da" – café visits ✓'
            when 5 then 'Patient''s carer present; consent recorded, see letter'
            when 6 then '日本語の問診票 🏥'
            when 7 then E'Tab\tseparated\tnote'
            when 8 then E'Windows line end\r\nsecond line'
            else 'Routine review'
          end
     from generate_series(1, 300) as g;

create table clinical.admissions (
     patient_id bigint not null references clinical.patients,
     admission_no integer not null,
     admitted_at timestamptz not null,
     discharged_at timestamptz,
     ward varchar(10) not null,
     elective boolean,
     primary_diagnosis varchar(10),
     primary key (patient_id, admission_no)
   );

comment on table clinical.admissions is 'Hospital admissions; key (patient_id, admission_no)';

comment on column clinical.admissions.admission_no is '1 for the first admission of a patient, then 2, 3, ...';

comment on column clinical.admissions.discharged_at is 'NULL while the patient is still admitted';

comment on column clinical.admissions.ward is 'reference.wards.ward_code';

comment on column clinical.admissions.primary_diagnosis is 'ICD-10 code';

insert into clinical.admissions
   select p.patient_id, n, a.admitted_at,
          case when (p.patient_id + n) % 23 = 0 then null
               else a.admitted_at + ((p.patient_id * n) % 21) * interval '1 day'
                                  + ((p.patient_id * 13 + n) % 1440) * interval '1 minute' end,
          (array['CARD', 'ONC', 'RESP', 'MAT', 'AE', 'GERI', 'PAED'])[(1 + (p.patient_id + n) % 7)::int],
          case when (p.patient_id * n) % 11 = 0 then null else (p.patient_id + n) % 3 = 0 end,
          (array['I21.4', 'C50.9', 'J18.9', 'O80', 'S72.0', 'N39.0', 'J45.9', 'E11.9'])
            [(1 + (p.patient_id * 3 + n) % 8)::int]
     from clinical.patients p
    cross join lateral generate_series(1, (p.patient_id % 4)::int) as n
    cross join lateral (
      select timestamptz '2018-01-01 08:00:00+00'
               + ((p.patient_id * 7 + n * 131) % 2400) * interval '1 day'
               + ((p.patient_id * 37 + n) % 86400) * interval '1 second'
               + ((p.patient_id * n * 7919) % 1000000) * interval '1 microsecond' as admitted_at
    ) as a;

create table clinical.lab_results (
     result_id bigint primary key,
     patient_id bigint not null references clinical.patients,
     test_code varchar(12) not null,
     collected_at timestamptz not null,
     value numeric(10,3),
     value_text text,
     abnormal boolean,
     specimen_id uuid
   );

comment on table clinical.lab_results is 'Laboratory results, one row per test on a specimen';

comment on column clinical.lab_results.test_code is 'reference.lab_tests.test_code';

comment on column clinical.lab_results.value is 'Numeric result in the unit of the test; NULL when not numeric';

comment on column clinical.lab_results.value_text is 'Result or comment as reported when not numeric';

comment on column clinical.lab_results.abnormal is 'Outside the reference range; NULL when unknown';

insert into clinical.lab_results
   select g, 1 + (g::bigint * 7919) % 300, t.test_code,
          timestamptz '2019-06-01 00:00:00+00'
            + ((g::bigint * 104729) % 157680000) * interval '1 second'
            + ((g::bigint * 271) % 1000000) * interval '1 microsecond',
          v.value,
          case when g % 31 = 0 then (array['haemolysed', '<0.5', 'sample clotted, "repeat"'])[1 + g % 3]
               when g % 53 = 0 then ''
               else null end,
          case when v.value is null then null else v.value < t.low or v.value > t.high end,
          case when g % 13 = 0 then null else md5('cr8tor-demo-specimen-' || (g / 3))::uuid end
     from generate_series(1, 900) as g
     join lateral (
       select * from reference.lab_tests order by test_code offset (g % 7) limit 1
     ) as t on true
    cross join lateral (
      select case when g % 31 = 0 then null
                  else round(t.low * 0.8 + (t.high - t.low * 0.8) * 1.1 * ((g * 37) % 100) / 100.0, 3)
             end::numeric(10,3) as value
    ) as v;

create view clinical.patient_summary as
   select p.patient_id, p.sex,
          extract(year from age(date '2025-01-01', p.birth_date))::smallint as age_on_2025_01_01,
          count(a.admission_no)::integer as admissions,
          max(a.admitted_at) as last_admitted_at,
          sum(a.discharged_at - a.admitted_at) as total_length_of_stay
     from clinical.patients p
     left join clinical.admissions a on a.patient_id = p.patient_id
    group by p.patient_id;

comment on view clinical.patient_summary is 'Per patient: age on 2025-01-01 and admissions so far';
