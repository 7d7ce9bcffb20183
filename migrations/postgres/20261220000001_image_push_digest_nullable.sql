-- A push from a registry whose payload names no digest (Quay, Docker Hub,
-- Nexus) is recorded with a NULL digest until the worker resolves its tag.
ALTER TABLE image_pushes ALTER COLUMN digest DROP NOT NULL;
