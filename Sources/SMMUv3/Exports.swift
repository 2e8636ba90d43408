// The spec's layouts are part of the model's API: `import SMMUv3` brings them too.
@_exported import SMMUv3Layout
