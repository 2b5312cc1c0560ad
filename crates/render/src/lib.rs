//! Renders the chromadb chart into typed objects.
