-- Queries of zoningsync.store.planner: what the demo shows a planner.

-- name: pending_cases_on_parcels
-- Pending rezoning cases with the parcels they cover and those parcels' zoning
-- today ($1 the jurisdiction, $2 how many rows).
SELECT c.case_number, c.status, c.from_zoning || ' -> ' || c.to_zoning AS request,
       c.hearing_at::date AS hearing, c.match_method AS matched_by, p.parcel_id,
       p.zoning_code AS zoned_now, round(ST_Area(p.geom::geography))::int AS m2
FROM zoningsync.pending_cases c
JOIN zoningsync.parcels p
  ON p.jurisdiction = c.jurisdiction AND p.parcel_id = ANY (c.matched_parcel_ids)
WHERE c.jurisdiction = $1
ORDER BY c.hearing_at NULLS LAST, c.case_number, p.parcel_id
LIMIT $2;
