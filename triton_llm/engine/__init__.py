"""The build pipeline: recipe -> fetch -> checkpoint -> engine, cached in object storage."""
