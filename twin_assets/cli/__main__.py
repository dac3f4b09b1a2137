from twin_assets.cli import main

main()
